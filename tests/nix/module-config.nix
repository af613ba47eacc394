# A NixOS configuration using services.nucleus, evaluated by the flake's
# checks.module-eval with lib.nixosSystem: it must raise no assertion, and
# the unit it produces is compared line by line with what lib.nix computes.
# Strings here carry %, $, quotes and backslashes on purpose: systemd must
# hand them to nucleus unchanged.
{ pkgs, ... }:
let
  nucleusLib = import ../../nix/lib.nix;
in
{
  # The least a NixOS system needs to evaluate.
  boot.loader.grub.enable = false;
  fileSystems."/" = {
    device = "none";
    fsType = "tmpfs";
  };
  system.stateVersion = "25.11";

  services.nucleus = {
    enable = true;

    containers.demo = {
      closure = nucleusLib.mkRootfs {
        inherit pkgs;
        packages = [ pkgs.busybox ];
      };
      command = [
        "/bin/sh"
        "-c"
        ''echo "$HOME" is 100% \ here''
      ];
      environment = {
        GREETING = "hi %h";
        ANSWER = 42;
      };
      volumes = [ "/srv/demo:/data:rw" ];
      tmpfs = [ "/cache:64M" ];
      secrets = [ "/var/lib/secrets/demo-token:/run/secrets/token" ];
      hostname = "demo";
      user = "1000:1000";
      workdir = "/data";
      memory = "128M";
      cpus = 0.5;
      pids = 64;
      timeout = 3600;
      hooks = {
        poststop = [ { path = "${pkgs.coreutils}/bin/true"; } ];
      };
      seccompProfile = {
        defaultAction = "SCMP_ACT_ALLOW";
        syscalls = [
          {
            names = [ "kexec_load" ];
            action = "SCMP_ACT_ERRNO";
          }
        ];
      };
    };

    # Only the defaults: must pass every check as they are.
    containers.minimal = {
      closure = nucleusLib.mkRootfs {
        inherit pkgs;
        packages = [ pkgs.hello ];
      };
      command = [ "/bin/hello" ];
    };

    # Disabled: no unit and no assertion, however incomplete.
    containers.off = {
      enable = false;
      closure = null;
      command = [ ];
    };
  };
}
