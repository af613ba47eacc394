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
  hook = "/nix/store/cccccccccccccccccccccccccccccccc-hook/bin/hook";

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
    autoStart = true;
    name = "web";
    serviceName = "nucleus-web";
    closure = fakeDrv;
    command = null;
    environment = { };
    environmentFiles = [ ];
    ports = [ ];
    readyTcpPort = null;
    volumes = [ ];
    tmpfs = [ ];
    secrets = [ ];
    credentials = { };
    hostname = null;
    user = null;
    workdir = null;
    memory = null;
    cpus = null;
    pids = null;
    network = null;
    platform = null;
    seccompProfile = null;
    seccompProfileSha256 = null;
    hooks = null;
    timeout = null;
    dependsOn = [ ];
    extraOptions = [ ];
  };

  problems =
    container:
    l.containerProblems {
      container = moduleDefaults // container;
      enabledContainers = [
        "web"
        "db"
      ];
    };

  # Each message's leading word: which field it is about.
  fieldsOf = map (m: builtins.head (builtins.match "([A-Za-z0-9]+).*" m));

  throws = v: !(builtins.tryEval (builtins.deepSeq v v)).success;

  bell = builtins.fromJSON ''"\u0007"'';

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

    # Without a command, the installable's main program runs: no "--".
    noCommandRunsTheMainProgram = {
      expr = l.mkRunArgs { closure = fakeDrv; };
      expected = [
        "run"
        store
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

    emptyCollectionsAndFalseSwitchesEmitNothing = {
      expr = l.mkRunArgs {
        environment = { };
        environmentFiles = [ ];
        ports = [ ];
        volumes = [ ];
        tmpfs = [ ];
        secrets = [ ];
        groupAdd = [ ];
        arg = { };
        argstr = { };
        extraOptions = [ ];
        rootless = false;
        tty = false;
        interactive = false;
        keep = false;
        replace = false;
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
        argstr.greeting = "hi";
        arg.n = "3";
        attr = "tests";
        replace = true;
        keep = true;
        interactive = true;
        tty = true;
        runsc = "/usr/bin/runsc";
        bootTimeout = 60;
        timeout = 30;
        rootless = true;
        platform = "ptrace";
        network = "sandbox";
        hooks = "/etc/nucleus/hooks.json";
        seccompProfileSha256 = "0000000000000000000000000000000000000000000000000000000000000000";
        seccompProfile = "/etc/nucleus/seccomp.json";
        pids = 100;
        cpus = 2;
        memory = "1G";
        workdir = "/work";
        groupAdd = [ 10 ];
        user = 1000;
        context = "/srv/ctx";
        secrets = [ "/var/lib/s/token:/run/secrets/token" ];
        tmpfs = [
          "/tmp2"
          "/cache:64M"
        ];
        volumes = [
          "/srv/a:/a"
          "/srv/b:/b:rw"
        ];
        readyTcpPort = 8080;
        ports = [ "127.0.0.1:8080:8080" ];
        environment.K = "V";
        environmentFiles = [ "/run/app.env" ];
        hostname = "box";
        name = "web-1";
        closure = fakeDrv;
        extraOptions = [ "--verbose" ];
        command = [ "/bin/app" ];
      };
      expected = [
        "run"
        "--name"
        "web-1"
        "--hostname"
        "box"
        "--env-file"
        "/run/app.env"
        "-e"
        "K=V"
        "-p"
        "127.0.0.1:8080:8080"
        "--ready-tcp"
        "8080"
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
        "--context"
        "/srv/ctx"
        "--user"
        "1000"
        "--group-add"
        "10"
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
        "--rootless"
        "--timeout"
        "30"
        "--boot-timeout"
        "60"
        "--runsc"
        "/usr/bin/runsc"
        "--tty"
        "--interactive"
        "--keep"
        "--replace"
        "-A"
        "tests"
        "--arg"
        "n"
        "3"
        "--argstr"
        "greeting"
        "hi"
        "--verbose"
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
        0.01
        1.0004
        0.0625
        "0.75"
      ];
      expected = [
        "0.5"
        "1.25"
        "2"
        "0.1"
        "0.01"
        "1"
        "0.063"
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

    emptyCommandThrows = {
      expr = throws (l.mkRunArgs { command = [ ]; });
      expected = true;
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

    escapeControlCharacters = {
      expr = l.escapeSystemdExecArg "a\nb\tc${bell}d";
      expected = ''"a\nb\tc\u0007d"'';
    };

    escapeEmptyAndSemicolon = {
      expr = l.escapeSystemdExecArgs [
        ""
        ";"
        "'single'"
      ];
      expected = ''"" ";" "'single'"'';
    };

    # The credentials directory is the one specifier a unit's command holds.
    credentialSecret = {
      expr =
        let
          word = l.credentialSecret "nucleus-web" "token";
        in
        [
          (l.escapeSystemdExecArg word)
          (l.expandSystemdWord word)
        ];
      expected = [
        ''"%d/token:/run/secrets/token"''
        "/run/credentials/nucleus-web.service/token:/run/secrets/token"
      ];
    };

    serviceCommands = {
      expr = l.mkServiceCommands {
        package = nucleusPkg;
        container = moduleDefaults // {
          environment.MSG = "50% of $X";
          command = [ "/bin/app" ];
          credentials.token = "/var/lib/100%/token";
        };
      };
      expected = {
        execStart = ''"${nucleusPkg}/bin/nucleus" "run" "--name" "web" "-e" "MSG=50%% of $$X" "--secret" "%d/token:/run/secrets/token" "${store}" "--" "/bin/app"'';
        execStartPre = ''-"${nucleusPkg}/bin/nucleus" "delete" "--force" "web"'';
        execStopPost = [
          ''-"${nucleusPkg}/bin/nucleus" "delete" "--force" "web"''
          ''-"${nucleusPkg}/bin/nucleus" "gc"''
        ];
        checkArgs = [
          "run"
          "--name"
          "web"
          "-e"
          "MSG=50% of $X"
          "--secret"
          "/run/credentials/nucleus-web.service/token:/run/secrets/token"
          store
          "--"
          "/bin/app"
        ];
        loadCredentials = [ "token:/var/lib/100%%/token" ];
      };
    };

    moduleDefaultsHaveNoProblem = {
      expr = problems { };
      expected = [ ];
    };

    everythingNixCanSeeIsReported = {
      expr = fieldsOf (problems {
        name = "-web";
        serviceName = "nucleus web";
        secrets = [
          "${builtins.toFile "nucleus-test-secret" "not secret at all"}:/run/secrets/s"
          "relative:/run/secrets/r"
        ];
        environmentFiles = [
          /tmp/nucleus-test/app.env
          "/nix/store/dddddddddddddddddddddddddddddddd-app.env"
          "app.env"
        ];
        credentials = {
          "a:b" = "/var/lib/secrets/x";
          token = "${fakeDrv}/token";
        };
        volumes = [ "data:/data" ];
        dependsOn = [ "missing" ];
        hooks.poststop = [ { path = "/usr/bin/true"; } ];
      });
      expected = [
        "name"
        "serviceName"
        "secrets"
        "secrets"
        "environmentFiles"
        "environmentFiles"
        "environmentFiles"
        "credentials"
        "credentials"
        "volumes"
        "dependsOn"
        "hooks"
      ];
    };

    hostPathsAreFine = {
      expr = problems {
        secrets = [ "/run/agenix/token:/run/secrets/token" ];
        environmentFiles = [ "/run/secrets/app.env" ];
        credentials.token = "/var/lib/secrets/token";
        volumes = [ "/srv/data:/data:rw" ];
        dependsOn = [ "db" ];
      };
      expected = [ ];
    };

    hooksInTheStoreOnly = {
      expr = map (hooks: builtins.length (l.hookProblems hooks)) [
        { poststop = [ { path = hook; } ]; }
        {
          prestart = [ { path = hook; } ];
          createRuntime = [ { path = hook; } ];
          poststart = [ { path = "/nix/store/cccccccccccccccccccccccccccccccc-hook"; } ];
        }
        { poststop = [ { path = "/usr/bin/true"; } ]; }
        { poststop = [ { path = "/nix/store/../usr/bin/true"; } ]; }
        { poststop = [ { path = "/nix/store/./x"; } ]; }
        { poststop = [ { path = "/nix/store/"; } ]; }
        { poststop = [ { args = [ "x" ]; } ]; }
        { createContainer = [ { path = hook; } ]; }
        { startContainer = [ ]; }
        { postStop = [ { path = hook; } ]; }
      ];
      expected = [
        0
        0
        1
        1
        1
        1
        1
        1
        1
        1
      ];
    };

    flagsByFieldCoversEveryFlagField = {
      expr = builtins.length (builtins.attrNames l.flagsByField) + 3 == builtins.length l.runArgFields;
      expected = true;
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
