# A NixOS configuration using services.nucleus. The flake's checks evaluate
# it with lib.nixosSystem, tests/nix_eval.rs with the stand-in NixOS
# (eval-module.nix): it raises no assertion, and `nucleus check-args`
# accepts every container's arguments. Strings here carry %, $, quotes, a
# backslash and a control character on purpose: systemd must hand them to
# nucleus unchanged.
{ pkgs, ... }:
let
  nucleusLib = import ../../nix/lib.nix;
  bell = builtins.fromJSON ''"\u0007"'';
in
{
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
        ''echo "$HOME" is 100% \ here${bell}''
      ];
      environment = {
        GREETING = "hi %h";
        ANSWER = 42;
      };
      environmentFiles = [ "/run/secrets/demo.env" ];
      ports = [ "127.0.0.1:8080:80" ];
      readyTcpPort = 80;
      volumes = [ "/srv/demo:/data:rw" ];
      tmpfs = [ "/cache:64M" ];
      secrets = [ "/var/lib/secrets/demo-key:/run/secrets/key" ];
      credentials.token = "/var/lib/secrets/demo-token";
      hostname = "demo";
      user = "1000:1000";
      workdir = "/data";
      memory = "128M";
      cpus = 0.5;
      pids = 64;
      timeout = 3600;
      dependsOn = [ "db" ];
      extraOptions = [ "--verbose" ];
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

    # Started only when asked for, or when demo needs it.
    containers.db = {
      closure = pkgs.hello;
      command = [ "/bin/hello" ];
      autoStart = false;
      serviceName = "nucleus-database";
    };

    # Only the defaults: the closure's main program, no network.
    containers.minimal = {
      closure = nucleusLib.mkRootfs {
        inherit pkgs;
        packages = [ pkgs.hello ];
      };
    };

    # Disabled: no unit and no assertion, however incomplete.
    containers.off = {
      enable = false;
      secrets = [ "relative:/run/secrets/x" ];
    };
  };
}
