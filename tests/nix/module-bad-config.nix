# A NixOS configuration with mistakes only Nix can see: the evaluation
# fails with one assertion per mistake below, each naming the container
# (expected-problems.nix lists them).
{ pkgs, ... }:
{
  services.nucleus = {
    enable = true;
    containers.bad = {
      name = "-bad";
      serviceName = "nucleus bad";
      closure = pkgs.hello;
      command = [ "/bin/hello" ];
      volumes = [ "relative/dir:/data" ];
      # Interpolating a package puts a store path (with its context) here.
      secrets = [ "${pkgs.hello}/token:/run/secrets/token" ];
      # A Nix path would be copied into the store.
      environmentFiles = [ ./module-bad-config.nix ];
      credentials."no/slash" = "/var/lib/secrets/x";
      hooks.poststop = [ { path = "/usr/bin/true"; } ];
      hooks.startContainer = [ { path = "${pkgs.coreutils}/bin/true"; } ];
      dependsOn = [ "missing" ];
    };
  };
}
