# A NixOS configuration that services.nucleus must refuse: the flake's
# checks.module-eval expects one failed assertion per mistake below, each
# naming the container and the field.
{ pkgs, ... }:
{
  boot.loader.grub.enable = false;
  fileSystems."/" = {
    device = "none";
    fsType = "tmpfs";
  };
  system.stateVersion = "25.11";

  services.nucleus = {
    enable = true;
    containers.bad = {
      name = "-bad";
      closure = pkgs.hello;
      command = [ ];
      pids = 10;
      memory = "lots";
      volumes = [
        "relative/dir:/data"
        "/srv/x:data"
      ];
      # Interpolating a package puts a store path (with its context) here.
      secrets = [ "${pkgs.hello}/token:/run/secrets/token" ];
      seccompProfileSha256 = "abc";
    };
  };
}
