# NixOS module: services.nucleus runs each declared container as a systemd
# service, `nucleus run` of a Nix-built closure under gVisor.
#
# Its options follow virtualisation.oci-containers where the two meet
# (autoStart, dependsOn, ports, environmentFiles, serviceName,
# extraOptions); docs/nix.md lists the differences. The argument list, its
# quoting for systemd and the checks only Nix can make live in ./lib.nix,
# which is plain Nix and tested without nixpkgs. Whether nucleus accepts a
# container's arguments is asked of nucleus itself: `nucleus check-args`
# runs on them while the system is built (system.checks), so a rebuild
# fails wherever the unit would.
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
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    types
    ;

  nucleusLib = import ./lib.nix;

  cfg = config.services.nucleus;

  enabledContainers = lib.filterAttrs (_: c: c.enable) cfg.containers;

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

  commandsFor =
    name: c:
    nucleusLib.mkServiceCommands {
      inherit (cfg) package;
      container = c // {
        hooks = fileArg name "hooks" c.hooks;
        seccompProfile = fileArg name "seccomp" c.seccompProfile;
        seccompProfileSha256 = seccompSha256 c;
      };
    };

  # The container reaches a network beyond its own loopback.
  usesNetwork = c: c.network == "sandbox" || c.network == "host" || c.ports != [ ];

  # `nucleus check-args` on the arguments nucleus will receive from systemd;
  # the build fails with nucleus's own message where nucleus would refuse
  # them. check-args reads no file, so the arguments' store paths (the
  # closure, hook and seccomp files) need not be built for it: their
  # context is dropped, and only nucleus itself is a dependency.
  checkArgsFor =
    name: c:
    pkgs.runCommand "nucleus-check-args-${c.serviceName}" { } ''
      if ! ${cfg.package}/bin/nucleus check-args ${
        lib.escapeShellArgs (map builtins.unsafeDiscardStringContext (commandsFor name c).checkArgs)
      }; then
        echo "services.nucleus.containers.${name}: nucleus refuses these arguments (see above)" >&2
        exit 1
      fi
      touch $out
    '';

  serviceFor =
    name: c:
    let
      cmds = commandsFor name c;
      # Units of the containers this one depends on (a missing one is an
      # assertion below).
      dependencies = map (d: "${enabledContainers.${d}.serviceName}.service") (
        builtins.filter (d: enabledContainers ? ${d}) c.dependsOn
      );
    in
    {
      description = "nucleus container ${c.name}";
      wantedBy = lib.optional c.autoStart "multi-user.target";
      wants = lib.optional (usesNetwork c) "network-online.target";
      after = lib.optional (usesNetwork c) "network-online.target" ++ dependencies;
      requires = dependencies;

      # nucleus resolves the closure with the nix CLI.
      path = [ config.nix.package ];

      # nucleus keeps its state (and runsc's) under NUCLEUS_STATE_ROOT: the
      # unit's own runtime directory, so units never see each other's.
      environment.NUCLEUS_STATE_ROOT = "/run/${c.serviceName}";

      serviceConfig = {
        # nucleus itself (the main process) sends READY=1 once the workload
        # runs, or once readyTcpPort accepts, and STOPPING=1 when it stops.
        Type = "notify";
        # Every argument quoted for systemd (not for a shell): `%` and `$`
        # reach nucleus as written; only the credentials directory is a
        # specifier (%d).
        ExecStart = cmds.execStart;
        # `-`: nothing to delete is fine. Before the start, so a crashed
        # run's leftovers never block the restart; after the stop, so
        # nothing is left on the host.
        ExecStartPre = [ cmds.execStartPre ];
        ExecStopPost = cmds.execStopPost;
        LoadCredential = cmds.loadCredentials;

        Restart = "on-failure";
        RestartSec = 5;

        RuntimeDirectory = c.serviceName;
        RuntimeDirectoryMode = "0700";
        # Kept across stops and restarts (it lives on /run, so a reboot
        # clears it): if a sandbox ever outlived nucleus, its runsc state is
        # still there for the `delete --force` above to find.
        RuntimeDirectoryPreserve = "yes";

        # Stopping: SIGTERM goes to nucleus alone (KillMode=mixed), which
        # forwards it to the workload with `runsc kill` (a signal sent to
        # the runsc process itself would kill the sandbox without the
        # workload seeing it) and exits with the workload's status. Only
        # what is still left after that, or after TimeoutStopSec, gets
        # SIGKILL.
        KillMode = "mixed";
        KillSignal = "SIGTERM";
        # 143 = 128 + SIGTERM: the workload ended because it was asked to
        # stop; a clean stop, not a failure to restart from.
        SuccessExitStatus = "143";

        # No ProtectSystem=strict and friends: nucleus needs root to make
        # mount namespaces and let runsc create its cgroups, and the
        # isolation boundary is gVisor itself. Should this unit be hardened
        # later, the runtime directory (the state root) must stay writable.
      };
    };

  # A host file option: a string naming a file on the host. A Nix path is
  # accepted by the type only to be refused with a clear message (it would
  # be copied into the world-readable store).
  hostFile = types.either types.str types.path;

  jsonFile = types.either types.path (types.attrsOf types.anything);

  containerModule =
    { name, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Whether to define this container's service at all.";
        };

        autoStart = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Whether the container starts at boot. If false, its service has
            to be started on demand.
          '';
        };

        serviceName = mkOption {
          type = types.str;
          default = "nucleus-${name}";
          defaultText = "nucleus-<name>";
          description = ''
            The systemd service that runs the container. It also names the
            service's runtime directory, `/run/<serviceName>`, which is
            nucleus's state root for this container.
          '';
        };

        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalMD "the attribute name";
          description = ''
            The container's name for nucleus (`--name`), which `nucleus kill`
            and `nucleus delete` address it by:
            `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`.
          '';
        };

        closure = mkOption {
          type = types.package;
          example = literalExpression ''
            inputs.nucleus.lib.mkRootfs { inherit pkgs; packages = [ pkgs.busybox pkgs.hello ]; }
          '';
          description = ''
            The store path the container runs (nucleus's INSTALLABLE): its
            top-level `bin`, `sbin`, `lib`, `lib64`, `usr` and `etc` become the
            sandbox's, and `/nix/store` shows exactly its closure. Build one
            with `lib.mkRootfs` from this flake, or give a package itself. There
            is no default, and no host mode (the host's `/bin`, `/usr` and whole
            `/nix/store`) for services.
          '';
        };

        command = mkOption {
          type = types.nullOr (types.nonEmptyListOf types.str);
          default = null;
          example = [
            "/bin/app"
            "--port"
            "8080"
          ];
          description = ''
            The program and its arguments, run inside the sandbox; `null`
            runs the closure's main program, as `nix run` picks it. Each
            element is one argument: nothing is split, and `%`, `$`, quotes
            and spaces reach the program unchanged.
          '';
        };

        environment = mkOption {
          type = types.attrsOf (types.either types.str types.int);
          default = { };
          example = {
            RUST_LOG = "info";
          };
          description = ''
            Environment variables of the workload (`-e KEY=VALUE`). The values
            end up in the unit file and the store, which every local user can
            read: put secrets in {option}`environmentFiles` or
            {option}`credentials` instead.
          '';
        };

        environmentFiles = mkOption {
          type = types.listOf hostFile;
          default = [ ];
          example = [ "/run/secrets/app.env" ];
          description = ''
            Files of `KEY=VALUE` lines (`#` comments and blank lines allowed)
            that nucleus reads when the service starts (`--env-file`). They
            are host paths given as strings and never enter the store; a Nix
            path or a store path is refused.
          '';
        };

        ports = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "127.0.0.1:8080:80" ];
          description = ''
            Ports to publish from the sandbox (`-p [HOSTIP:]HOSTPORT:PORT[/tcp]`);
            the host address defaults to 127.0.0.1. Publishing a port implies
            `network = "sandbox"` and bypasses the NixOS firewall when bound
            to another address than loopback.
          '';
        };

        readyTcpPort = mkOption {
          type = types.nullOr types.port;
          default = null;
          example = 8080;
          description = ''
            Report the service as started only once this port inside the
            sandbox accepts connections (`--ready-tcp`); by default it is
            started once the workload runs. Units that depend on this one
            wait for it.
          '';
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
            `SRC:DST[:ro|rw]` (`-v`), read-only unless `rw`; `SRC` is an
            absolute host path.
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
            These are strings naming files on the host at run time, not Nix
            paths: anything interpolated from a Nix path or a package is in
            the world-readable store, and is refused.
          '';
        };

        credentials = mkOption {
          type = types.attrsOf hostFile;
          default = { };
          example = {
            token = "/var/lib/secrets/app-token";
          };
          description = ''
            Secrets handed over as systemd credentials: each `ID = PATH` becomes
            `LoadCredential=ID:PATH` and is shown read-only at
            `/run/secrets/ID` (`--secret %d/ID:/run/secrets/ID`). systemd
            reads PATH when the service starts, so it may be readable by root
            alone.
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
          description = "CPU limit in CPUs (`--cpus`), at least `0.01`, at most three decimals.";
        };

        pids = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          example = 256;
          description = "Maximum number of processes (`--pids`); at least 50, since gVisor's own processes count against it.";
        };

        network = mkOption {
          type = types.nullOr (
            types.enum [
              "none"
              "sandbox"
              "host"
            ]
          );
          default = null;
          description = ''
            `none` (loopback only), `sandbox` (gVisor's own network stack) or
            `host` (the host's network namespace) (`--network`); `null` is
            nucleus's default: `none`, or `sandbox` when {option}`ports` are
            published. With a network the service starts after
            `network-online.target`.
          '';
        };

        platform = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "ptrace";
          description = "runsc platform (`--platform`); `null` uses runsc's own default.";
        };

        seccompProfile = mkOption {
          type = types.nullOr jsonFile;
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
          type = types.nullOr jsonFile;
          default = null;
          example = literalExpression ''
            { poststop = [ { path = "''${pkgs.coreutils}/bin/true"; } ]; }
          '';
          description = ''
            An OCI `hooks` object (`--hooks`): a JSON file, or the object itself
            as an attribute set (written to the store). Hooks run on the host
            with nucleus's privileges, so every hook program must be a file
            inside the Nix store; runsc runs `prestart`, `createRuntime`,
            `poststart` and `poststop` hooks. An attribute set or a Nix path
            literal is checked when the system is evaluated.
          '';
        };

        timeout = mkOption {
          type = types.nullOr types.ints.positive;
          default = null;
          description = "Stop the workload after this many seconds (`--timeout`); the service then exits with status 124.";
        };

        dependsOn = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "db" ];
          description = ''
            Other containers (their attribute names under
            {option}`services.nucleus.containers`) this one needs: their
            services become `Requires=` and `After=` of this one.
          '';
        };

        extraOptions = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [
            "--boot-timeout"
            "60"
          ];
          description = ''
            More `nucleus run` options, placed after the ones above and before
            the closure. Global options work here too in their long form
            (`--verbose`); after `run`, `-v` means `--volume`.
          '';
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

    checkArguments = mkOption {
      type = types.bool;
      default = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
      defaultText = literalExpression "pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform";
      description = ''
        Whether building the system runs `nucleus check-args` on each
        container's arguments, so that a rebuild fails, with nucleus's own
        message, wherever the service would. It runs the configured package
        on the build machine, hence the default.
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
      description = "Containers to run, each as the systemd service {option}`serviceName`.";
    };
  };

  config = mkMerge [
    {
      warnings = lib.optional (!cfg.enable && enabledContainers != { }) (
        "services.nucleus.containers defines ${toString (builtins.attrNames enabledContainers)}, "
        + "but services.nucleus.enable is false: no container runs"
      );
    }

    (mkIf cfg.enable {
      assertions =
        lib.concatLists (
          lib.mapAttrsToList (
            name: c:
            map
              (message: {
                assertion = false;
                message = "services.nucleus.containers.${name}: ${message}";
              })
              (
                nucleusLib.containerProblems {
                  container = c;
                  enabledContainers = builtins.attrNames enabledContainers;
                }
              )
          ) enabledContainers
        )
        ++ map (
          serviceName:
          let
            sharing = builtins.attrNames (lib.filterAttrs (_: c: c.serviceName == serviceName) enabledContainers);
          in
          {
            assertion = builtins.length sharing == 1;
            message = "services.nucleus.containers: ${toString sharing} share the serviceName ${serviceName}";
          }
        ) (lib.unique (lib.mapAttrsToList (_: c: c.serviceName) enabledContainers));

      environment.systemPackages = [ cfg.package ];

      systemd.services = lib.mapAttrs' (
        name: c: lib.nameValuePair c.serviceName (serviceFor name c)
      ) enabledContainers;

      system.checks = lib.optionals cfg.checkArguments (lib.mapAttrsToList checkArgsFor enabledContainers);
    })
  ];
}
