# Plain-Nix tests of nix/lib.nix, needing nothing but Nix:
#   nix-instantiate --eval --strict --json --expr 'import ./tests/nix/lib-tests.nix { }'
# gives { passed = N; failures = [ ... ]; }. tests/nix_eval.rs runs it with
# `cargo test`, and the flake runs it as checks.<system>.lib-tests.
{
  nucleusLib ? import ../../nix/lib.nix,
}:
let
  l = nucleusLib;

  store = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-rootfs";
  fakeDrv = {
    type = "derivation";
    outPath = store;
  };
  nucleusPkg = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nucleus-0.1.0";

  # Every field mkRunArgs knows, set to null.
  allNull = builtins.listToAttrs (
    map (n: {
      name = n;
      value = null;
    }) l.runArgFields
  );

  # What the NixOS module passes for a container left at its defaults.
  moduleDefaults = {
    enable = true;
    name = "web";
    closure = fakeDrv;
    command = [ "/bin/app" ];
    environment = { };
    volumes = [ ];
    tmpfs = [ ];
    secrets = [ ];
    hostname = null;
    user = null;
    workdir = null;
    memory = null;
    cpus = null;
    pids = null;
    network = "none";
    platform = null;
    seccompProfile = null;
    seccompProfileSha256 = null;
    hooks = null;
    timeout = null;
    extraArgs = [ ];
  };

  throws = v: !(builtins.tryEval (builtins.deepSeq v v)).success;

  tests = {
    empty = {
      expr = l.mkRunArgs { };
      expected = [ "run" ];
    };

    closureAndCommand = {
      expr = l.mkRunArgs {
        closure = store;
        command = [
          "/bin/sh"
          "-c"
          "echo hi"
        ];
      };
      expected = [
        "run"
        store
        "--"
        "/bin/sh"
        "-c"
        "echo hi"
      ];
    };

    nullFieldsEmitNothing = {
      expr = l.mkRunArgs (
        allNull
        // {
          closure = store;
          command = [ "/bin/true" ];
        }
      );
      expected = [
        "run"
        store
        "--"
        "/bin/true"
      ];
    };

    emptyCollectionsEmitNothing = {
      expr = l.mkRunArgs {
        environment = { };
        volumes = [ ];
        tmpfs = [ ];
        secrets = [ ];
        extraArgs = [ ];
      };
      expected = [ "run" ];
    };

    environmentSortedByKey = {
      expr = l.mkRunArgs {
        environment = {
          zeta = "z";
          ALPHA = "a b";
          Mid = 7;
          _u = "";
        };
      };
      expected = [
        "run"
        "-e"
        "ALPHA=a b"
        "-e"
        "Mid=7"
        "-e"
        "_u="
        "-e"
        "zeta=z"
      ];
    };

    everyFlagInOrder = {
      expr = l.mkRunArgs {
        timeout = 30;
        platform = "ptrace";
        network = "sandbox";
        hooks = "/etc/nucleus/hooks.json";
        seccompProfileSha256 = "0000000000000000000000000000000000000000000000000000000000000000";
        seccompProfile = "/etc/nucleus/seccomp.json";
        pids = 100;
        cpus = 2;
        memory = "1G";
        workdir = "/work";
        user = 1000;
        secrets = [ "/var/lib/s/token:/run/secrets/token" ];
        tmpfs = [
          "/tmp2"
          "/cache:64M"
        ];
        volumes = [
          "/srv/a:/a"
          "/srv/b:/b:rw"
        ];
        environment.K = "V";
        hostname = "box";
        name = "web-1";
        closure = fakeDrv;
        extraArgs = [ "--keep" ];
        command = [ "/bin/app" ];
      };
      expected = [
        "run"
        "--name"
        "web-1"
        "--hostname"
        "box"
        "-e"
        "K=V"
        "-v"
        "/srv/a:/a"
        "-v"
        "/srv/b:/b:rw"
        "--tmpfs"
        "/tmp2"
        "--tmpfs"
        "/cache:64M"
        "--secret"
        "/var/lib/s/token:/run/secrets/token"
        "--user"
        "1000"
        "-w"
        "/work"
        "--memory"
        "1G"
        "--cpus"
        "2"
        "--pids"
        "100"
        "--seccomp-profile"
        "/etc/nucleus/seccomp.json"
        "--seccomp-profile-sha256"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "--hooks"
        "/etc/nucleus/hooks.json"
        "--network"
        "sandbox"
        "--platform"
        "ptrace"
        "--timeout"
        "30"
        "--keep"
        store
        "--"
        "/bin/app"
      ];
    };

    floatCpusInThousandths = {
      expr = map (c: builtins.elemAt (l.mkRunArgs { cpus = c; }) 2) [
        0.5
        1.25
        2.0
        0.1
        1.0004
        "0.75"
      ];
      expected = [
        "0.5"
        "1.25"
        "2"
        "0.1"
        "1"
        "0.75"
      ];
    };

    # A path literal is not copied into the store: ./result stays a path
    # that nucleus resolves itself.
    pathClosureIsNotCopied = {
      expr = l.mkRunArgs { closure = /tmp/nucleus-test/result; };
      expected = [
        "run"
        "/tmp/nucleus-test/result"
      ];
    };

    commandWithoutClosureIsHostMode = {
      expr = l.mkRunArgs { command = [ "/bin/true" ]; };
      expected = [
        "run"
        "--"
        "/bin/true"
      ];
    };

    unknownFieldThrows = {
      expr = throws (l.mkRunArgs { enviroment.A = "b"; });
      expected = true;
    };

    boolValueThrows = {
      expr = throws (l.mkRunArgs { timeout = true; });
      expected = true;
    };

    escapePlain = {
      expr = l.escapeSystemdExecArg "plain";
      expected = ''"plain"'';
    };

    escapeSpecifier = {
      expr = l.escapeSystemdExecArg "%h/%n";
      expected = ''"%%h/%%n"'';
    };

    escapeVariables = {
      expr = l.escapeSystemdExecArg "$HOME \${USER}";
      expected = ''"$$HOME $''${USER}"'';
    };

    escapeQuotesAndBackslashes = {
      expr = l.escapeSystemdExecArg ''say "hi" \ C:\dir\'';
      expected = ''"say \"hi\" \\ C:\\dir\\"'';
    };

    escapeNewlineAndTab = {
      expr = l.escapeSystemdExecArg "a\nb\tc";
      expected = ''"a\nb\tc"'';
    };

    escapeEmptyAndSemicolon = {
      expr = l.escapeSystemdExecArgs [
        ""
        ";"
        "'single'"
      ];
      expected = ''"" ";" "'single'"'';
    };

    execCommands = {
      expr = l.mkExecCommands {
        package = nucleusPkg;
        name = "web";
        container = moduleDefaults // {
          environment.MSG = "50% of $X";
        };
      };
      expected = {
        unitName = "nucleus-web";
        runtimeDirectory = "nucleus-web";
        stateRoot = "/run/nucleus-web";
        containerName = "web";
        execStart = ''"${nucleusPkg}/bin/nucleus" "run" "--name" "web" "-e" "MSG=50%% of $$X" "--network" "none" "${store}" "--" "/bin/app"'';
        execStartPre = ''-"${nucleusPkg}/bin/nucleus" "delete" "--force" "web"'';
        execStopPost = ''-"${nucleusPkg}/bin/nucleus" "delete" "--force" "web"'';
      };
    };

    execStartNameDefaultsToAttribute = {
      expr = l.mkExecStart {
        package = nucleusPkg;
        name = "api";
        container = {
          name = null;
          closure = store;
          command = [ "/bin/api" ];
        };
      };
      expected = ''"${nucleusPkg}/bin/nucleus" "run" "--name" "api" "${store}" "--" "/bin/api"'';
    };

    moduleDefaultsAreValid = {
      expr = l.validateContainer {
        name = "web";
        container = moduleDefaults;
      };
      expected = [ ];
    };

    fullValidArgsAreValid = {
      expr = l.validateRunArgs {
        name = "a.b_c-1";
        hostname = "svc.example.org";
        environment = {
          A = "1";
          B = 2;
        };
        volumes = [
          "/srv/a:/a"
          "rel:/b:rw"
          "/srv/c:/c:ro"
        ];
        tmpfs = [
          "/scratch"
          "/cache:64m"
        ];
        secrets = [ "/var/lib/secret:/run/secrets/a/b" ];
        user = "1000:100";
        workdir = "/a";
        memory = 1048576;
        cpus = 0.25;
        pids = 50;
        seccompProfile = "/etc/p.json";
        seccompProfileSha256 = "ABCDEFabcdef0123456789012345678901234567890123456789012345678901";
        network = "host";
        platform = "kvm";
        timeout = 1;
        closure = store;
        command = [ "/bin/x" ];
        extraArgs = [ "--keep" ];
      };
      expected = [ ];
    };

    # One message per mistake, in field order.
    invalidArgsEachReported = {
      expr = map (m: builtins.head (builtins.match "([A-Za-z0-9]+).*" m)) (
        l.validateRunArgs {
          name = "_x";
          hostname = "-h";
          environment."A=B" = "c";
          volumes = [
            "/srv/a"
            "/srv/a:/b:rx"
            "/srv/a:/usr/local"
            "/proc/1:/p"
          ];
          tmpfs = [ "/t:12X" ];
          secrets = [
            "/nix/store/x-secret:/run/secrets/s"
            "/var/s:/etc/s"
          ];
          user = "root";
          workdir = "rel";
          memory = "0M";
          cpus = "0.0001";
          pids = 49;
          seccompProfileSha256 = "ab";
          network = "bridge";
          platform = "Ptrace";
          timeout = 0;
        }
      );
      expected = [
        "name"
        "hostname"
        "environment"
        "volumes"
        "volumes"
        "volumes"
        "volumes"
        "tmpfs"
        "secrets"
        "secrets"
        "user"
        "workdir"
        "memory"
        "cpus"
        "pids"
        "seccompProfileSha256"
        "seccompProfileSha256"
        "network"
        "platform"
        "timeout"
      ];
    };

    nameLimits = {
      expr = map (n: l.validateRunArgs { name = n; } == [ ]) [
        "a"
        "A9"
        "x.y_z-0"
        (builtins.concatStringsSep "" (builtins.genList (_: "n") 128))
        (builtins.concatStringsSep "" (builtins.genList (_: "n") 129))
        ""
        "-a"
        ".a"
        "a/b"
        "a b"
      ];
      expected = [
        true
        true
        true
        true
        false
        false
        false
        false
        false
        false
      ];
    };

    pidsBoundary = {
      expr = map (p: l.validateRunArgs { pids = p; } == [ ]) [
        49
        50
        "50"
        1000
      ];
      expected = [
        false
        true
        true
        true
      ];
    };

    secretFromStoreRefused = {
      expr =
        let
          file = builtins.toFile "nucleus-test-secret" "not secret at all";
        in
        map (m: builtins.match ".*(store).*" m != null) (
          l.validateContainer {
            name = "web";
            container = moduleDefaults // {
              secrets = [ "${file}:/run/secrets/s" ];
            };
          }
        );
      # The source is in the store, and the string carries store context.
      expected = [
        true
        true
      ];
    };

    serviceNeedsAbsoluteSourcesAndACommand = {
      expr = builtins.length (
        l.validateContainer {
          name = "bad name";
          container = moduleDefaults // {
            command = [ ];
            volumes = [ "data:/data" ];
            secrets = [ "token:/run/secrets/token" ];
          };
        }
      );
      # unit name, empty command, relative volume source, relative secret source
      expected = 4;
    };

    optionFlagsCoverEveryFlag = {
      expr = map (e: e.flag) l.optionFlags;
      expected = [
        "--name"
        "--hostname"
        "-e"
        "-v"
        "--tmpfs"
        "--secret"
        "--user"
        "-w"
        "--memory"
        "--cpus"
        "--pids"
        "--seccomp-profile"
        "--seccomp-profile-sha256"
        "--hooks"
        "--network"
        "--platform"
        "--timeout"
      ];
    };
  };

  results = map (
    name:
    let
      t = tests.${name};
      attempt = builtins.tryEval (builtins.deepSeq t.expr t.expr);
    in
    {
      inherit name;
      inherit (t) expected;
      ok = attempt.success && attempt.value == t.expected;
      actual = if attempt.success then attempt.value else "<threw>";
    }
  ) (builtins.attrNames tests);

  failures = map (r: removeAttrs r [ "ok" ]) (builtins.filter (r: !r.ok) results);
in
{
  passed = builtins.length results - builtins.length failures;
  inherit failures;
}
