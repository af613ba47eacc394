# NixOS module: services.nucleus runs each declared container as a systemd
# service, `nucleus run` of a Nix-built rootfs under gVisor.
#
# The per-container logic (argument list, systemd quoting, the unit's
# commands, the checks) lives in ./lib.nix, which is plain Nix and is tested
# without nixpkgs; this file only declares options and wires them in.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    literalExpression
    literalMD
    mapAttrs'
    mapAttrsToList
    filterAttrs
    mkEnableOption
    mkIf
    mkOption
    nameValuePair
    types
    ;

  nucleusLib = import ./lib.nix;

  cfg = config.services.nucleus;

  enabledContainers = filterAttrs (_: c: c.enable) cfg.containers;

  # A derivation is also an attribute set; only a plain one is an inline
  # JSON document.
  isInlineJson = v: builtins.isAttrs v && !lib.isStringLike v;

  # A file option as a path for the command line. An inline document is
  # written to the store; a Nix path literal is copied there (these files
  # are not secret: hooks and seccomp profiles only name store paths and
  # syscalls), so the unit never depends on the configuration's checkout.
  fileArg =
    name: what: v:
    if v == null then
      null
    else if isInlineJson v then
      pkgs.writeText "nucleus-${name}-${what}.json" (builtins.toJSON v)
    else if builtins.isPath v then
      "${v}"
    else
      v;

  # The pin for the seccomp profile: the one given, or, when the file's
  # bytes are known at evaluation time (an inline document or a Nix path
  # literal), its sha256, so the profile is always checked before use.
  seccompSha256 =
    c:
    if c.seccompProfileSha256 != null then
      c.seccompProfileSha256
    else if isInlineJson c.seccompProfile then
      builtins.hashString "sha256" (builtins.toJSON c.seccompProfile)
    else if builtins.isPath c.seccompProfile then
      builtins.hashFile "sha256" c.seccompProfile
    else
      null;

  # What lib.nix sees of a container: the options, with the files resolved.
  resolved =
    name: c:
    c
    // {
      hooks = fileArg name "hooks" c.hooks;
      seccompProfile = fileArg name "seccomp" c.seccompProfile;
      seccompProfileSha256 = seccompSha256 c;
    };

  commandsFor =
    name: c:
    nucleusLib.mkExecCommands {
      inherit (cfg) package;
      inherit name;
      container = resolved name c;
    };

  jsonFileType = types.either types.path (types.attrsOf types.anything);

  containerModule =
    { name, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Whether to run this container as the service {file}`nucleus-${name}.service`.";
        };

        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalMD "the attribute name";
          description = ''
            The container's name for nucleus (`--name`); `nucleus kill` and
            `nucleus delete` address it by this name. It must match
            `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`.
          '';
        };

        closure = mkOption {
          type = types.nullOr types.package;
          example = literalExpression ''
            inputs.nucleus.lib.mkRootfs { inherit pkgs; packages = [ pkgs.busybox pkgs.hello ]; }
          '';
          description = ''
            The store path the container runs (nucleus's INSTALLABLE): its
            top-level `bin`, `sbin`, `lib`, `lib64`, `usr` and `etc` become the
            sandbox's, and `/nix/store` shows exactly its closure. Build one
            with `lib.mkRootfs` from this flake. `null` runs in host mode (the
            host's `/bin`, `/usr`, `/nix/store` … read-only), which has to be
            chosen explicitly: there is no default.
          '';
        };

        command = mkOption {
          type = types.listOf types.str;
          example = [
            "/bin/app"
            "--port"
            "8080"
          ];
          description = ''
            The program and its arguments, run inside the sandbox. Each element
            is one argument: nothing is split, and `%`, `$`, quotes and spaces
            reach the program unchanged.
          '';
        };

        environment = mkOption {
          type = types.attrsOf (types.either types.str types.int);
          default = { };
          example = {
            RUST_LOG = "info";
          };
          description = "Environment variables of the workload (`-e KEY=VALUE`, in key order). `PATH` has a fixed default inside the sandbox.";
        };

        volumes = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [
            "/srv/app/data:/data:rw"
            "/srv/app/static:/static"
          ];
          description = ''
            Host directories or files shown in the sandbox, as
            `SRC:DST[:ro|rw]` (`-v`); read-only unless `rw`. `SRC` must be an
            absolute host path outside `/proc`, `/sys`, `/dev`, `/boot`, `/etc`,
            `/root`, `/run`, `/var/run` and `/nix`; `DST` an absolute path
            outside the directories nucleus manages.
          '';
        };

        tmpfs = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "/cache:256M" ];
          description = "Writable tmpfs mounts, as `DST[:SIZE]` (`--tmpfs`), SIZE like `512K`, `64M`, `2G`.";
        };

        secrets = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "/var/lib/secrets/app-token:/run/secrets/token" ];
          description = ''
            Host files shown read-only under `/run/secrets` (`--secret SRC:DST`).
            These are plain strings naming files on the host at run time, not
            Nix paths: a Nix path (or anything interpolated from one) would be
            copied into the world-readable store, so such values are refused.
          '';
        };

        hostname = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "The sandbox's host name (`--hostname`); `null` keeps nucleus's fixed default.";
        };

        user = mkOption {
          type = types.nullOr (types.either types.str types.ints.unsigned);
          default = null;
          example = "1000:1000";
          description = "Numeric `UID[:GID]` of the workload inside the sandbox (`--user`); `null` is nucleus's default (0).";
        };

        workdir = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/data";
          description = "Absolute working directory inside the sandbox (`-w`).";
        };

        memory = mkOption {
          type = types.nullOr (types.either types.str types.ints.positive);
          default = null;
          example = "512M";
          description = "Memory limit (`--memory`): bytes, or a size like `512K`, `64M`, `2G`.";
        };

        cpus = mkOption {
          type = types.nullOr (
            types.oneOf [
              types.ints.positive
              types.float
              types.str
            ]
          );
          default = null;
          example = 0.5;
          description = "CPU limit in CPUs (`--cpus`), at most three decimals, e.g. `0.5` or `2`.";
        };

        pids = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          example = 256;
          description = "Maximum number of processes (`--pids`); at least 50, since gVisor's own processes count against it.";
        };

        network = mkOption {
          type = types.enum nucleusLib.networks;
          default = "none";
          description = ''
            `none` (loopback only), `sandbox` (gVisor's own network stack) or
            `host` (the host's network namespace) (`--network`).
          '';
        };

        platform = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "ptrace";
          description = "runsc platform (`--platform`); `null` uses runsc's own default.";
        };

        seccompProfile = mkOption {
          type = types.nullOr jsonFileType;
          default = null;
          description = ''
            An OCI `linux.seccomp` profile (`--seccomp-profile`): a file, or the
            document itself as an attribute set (written to the store). When
            the file's content is known at evaluation time (an attribute set or
            a Nix path literal) its sha256 is pinned automatically.
          '';
        };

        seccompProfileSha256 = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "Expected sha256 (64 hex digits) of the seccomp profile (`--seccomp-profile-sha256`).";
        };

        hooks = mkOption {
          type = types.nullOr jsonFileType;
          default = null;
          example = literalExpression ''
            { poststop = [ { path = "''${pkgs.coreutils}/bin/true"; } ]; }
          '';
          description = ''
            An OCI `hooks` object (`--hooks`): a JSON file, or the object itself
            as an attribute set (written to the store). Hook programs must be
            regular files inside the Nix store.
          '';
        };

        timeout = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          description = "Kill the workload after this many seconds (`--timeout`).";
        };

        extraArgs = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = "More `nucleus run` options, placed after the ones above and before the closure.";
        };
      };
    };
in
{
  options.services.nucleus = {
    enable = mkEnableOption "nucleus containers: Nix closures run as systemd services inside gVisor";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { } # nucleus, wrapped with gVisor's runsc";
      description = ''
        The nucleus package. It must find runsc on its own: the default is
        wrapped with `NUCLEUS_RUNSC` pointing at gVisor's runsc.
      '';
    };

    containers = mkOption {
      type = types.attrsOf (types.submodule containerModule);
      default = { };
      example = literalExpression ''
        {
          hello = {
            closure = inputs.nucleus.lib.mkRootfs { inherit pkgs; packages = [ pkgs.busybox ]; };
            command = [ "/bin/sh" "-c" "echo hello from $HOSTNAME; sleep infinity" ];
            memory = "64M";
            pids = 64;
          };
        }
      '';
      description = "Containers to run, each as the service `nucleus-<name>.service`.";
    };
  };

  config = mkIf cfg.enable {
    assertions = lib.concatLists (
      mapAttrsToList (
        name: c:
        map
          (message: {
            assertion = false;
            message = "services.nucleus.containers.${name}: ${message}";
          })
          (
            nucleusLib.validateContainer {
              inherit name;
              container = resolved name c;
            }
          )
      ) enabledContainers
    );

    environment.systemPackages = [ cfg.package ];

    systemd.services = mapAttrs' (
      name: c:
      let
        cmds = commandsFor name c;
      in
      nameValuePair cmds.unitName {
        description = "nucleus container ${cmds.containerName}";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];

        # nucleus resolves the closure with the nix CLI.
        path = [ config.nix.package ];

        # nucleus keeps its state (and runsc's) under NUCLEUS_STATE_ROOT: the
        # unit's own runtime directory, so units never see each other's.
        environment.NUCLEUS_STATE_ROOT = cmds.stateRoot;

        serviceConfig = {
          Type = "exec";
          # Built by lib.nix's mkExecCommands: every argument double-quoted
          # for systemd (not for a shell), `%` and `$` doubled.
          ExecStart = cmds.execStart;
          # `-`: nothing to delete is fine. Before the start, so a crashed
          # run's leftovers never block the restart; after the stop, so
          # nothing is left on the host.
          ExecStartPre = cmds.execStartPre;
          ExecStopPost = cmds.execStopPost;

          Restart = "on-failure";
          RestartSec = 5;

          RuntimeDirectory = cmds.runtimeDirectory;
          RuntimeDirectoryMode = "0700";
          # Kept across stops and restarts (it lives on /run, so a reboot
          # clears it): if a sandbox ever outlived nucleus, its runsc state
          # is still there for the `delete --force` above to find.
          RuntimeDirectoryPreserve = "yes";

          # Stopping: SIGTERM goes to nucleus alone (KillMode=mixed), which
          # forwards it to the workload with `runsc kill` (a signal sent to
          # the runsc process itself would kill the sandbox without the
          # workload seeing it) and exits with the workload's status. Only
          # what is still left after that, or after TimeoutStopSec, gets
          # SIGKILL. An ExecStop=`nucleus kill` would race the same SIGTERM
          # that systemd sends anyway once ExecStop returns.
          KillMode = "mixed";
          KillSignal = "SIGTERM";
          # 143 = 128 + SIGTERM: the workload ended because it was asked to
          # stop; a clean stop, not a failure to restart from.
          SuccessExitStatus = "143";

          # No ProtectSystem=strict and friends: nucleus needs root to make
          # mount namespaces and let runsc create its cgroups, and the
          # isolation boundary is gVisor itself. Should this unit be
          # hardened later, the runtime directory (the state root) must stay
          # writable: ReadWritePaths = [ "/run/${cmds.runtimeDirectory}" ].
        };
      }
    ) enabledContainers;
  };
}
