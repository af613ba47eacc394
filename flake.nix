{
  description = "nucleus: run Nix closures inside gVisor with a hardened, reproducible OCI bundle";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # gVisor (runsc) exists for these two only.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];

      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Plain Nix (builtins only): mkRunArgs, mkRootfs, the systemd quoting.
      nucleusLib = import ./nix/lib.nix;
    in
    {
      lib = nucleusLib;

      packages = forAllSystems (pkgs: {
        nucleus = pkgs.callPackage ./nix/package.nix { };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.nucleus;
      });

      apps = forAllSystems (
        pkgs:
        let
          app = {
            type = "app";
            program = pkgs.lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.nucleus;
            meta.description = "Run a Nix closure inside gVisor";
          };
        in
        {
          nucleus = app;
          default = app;
        }
      );

      nixosModules = {
        nucleus = ./nix/module.nix;
        default = self.nixosModules.nucleus;
      };

      overlays.default = final: _prev: {
        nucleus = final.callPackage ./nix/package.nix { };
      };

      checks = forAllSystems (
        pkgs:
        let
          inherit (pkgs) lib;
          system = pkgs.stdenv.hostPlatform.system;

          evalSystem =
            config:
            nixpkgs.lib.nixosSystem {
              modules = [
                self.nixosModules.default
                config
                { nixpkgs.hostPlatform = system; }
              ];
            };

          # Only this module's assertions: the test configurations are not
          # meant to be bootable systems.
          nucleusFailures =
            eval:
            map (a: a.message) (
              builtins.filter (
                a: !a.assertion && lib.hasPrefix "services.nucleus." a.message
              ) eval.config.assertions
            );

          good = evalSystem ./tests/nix/module-config.nix;
          bad = evalSystem ./tests/nix/module-bad-config.nix;

          goodFailures = nucleusFailures good;
          badFailures = nucleusFailures bad;

          # Each mistake in module-bad-config.nix, by the words of its message.
          expectedBad = [
            "containers.bad: name: '-bad' must match"
            "containers.bad: command: give the program to run"
            "containers.bad: pids: 10 is below 50"
            "containers.bad: memory: 'lots' is not a size"
            "containers.bad: volumes: 'relative/dir:/data': the source 'relative/dir' must be an absolute host path"
            "containers.bad: volumes: '/srv/x:data': 'data' is not an absolute path"
            "the source is in the Nix store"
            "refers to a store path"
            "containers.bad: seccompProfileSha256: 'abc' is not 64 hex digits"
            "containers.bad: seccompProfileSha256 is set but seccompProfile is not"
          ];
          missingBad = builtins.filter (
            want: !(builtins.any (msg: lib.hasInfix want msg) badFailures)
          ) expectedBad;

          units = good.config.systemd.units;
          demo = good.config.systemd.services.nucleus-demo.serviceConfig;
          package = good.config.services.nucleus.package;
          exe = "${package}/bin/nucleus";

          # Lines the generated unit file must contain, verbatim. The
          # command and environment hold %, $, quotes and a backslash, which
          # must reach nucleus as written.
          expectedUnitLines = [
            ''ExecStartPre=-"${exe}" "delete" "--force" "demo"''
            ''ExecStopPost=-"${exe}" "delete" "--force" "demo"''
            "Restart=on-failure"
            "KillMode=mixed"
            "KillSignal=SIGTERM"
            "RuntimeDirectory=nucleus-demo"
            "RuntimeDirectoryPreserve=yes"
            "ExecStart=${demo.ExecStart}"
          ];
          expectedExecStartParts = [
            ''"${exe}" "run" "--name" "demo" "--hostname" "demo"''
            ''"-e" "ANSWER=42" "-e" "GREETING=hi %%h"''
            ''"-v" "/srv/demo:/data:rw" "--tmpfs" "/cache:64M"''
            ''"--secret" "/var/lib/secrets/demo-token:/run/secrets/token"''
            ''"--user" "1000:1000" "-w" "/data" "--memory" "128M" "--cpus" "0.5" "--pids" "64"''
            ''"--seccomp-profile-sha256" "''
            ''"--hooks" "''
            ''"--network" "none" "--timeout" "3600"''
            ''"--" "/bin/sh" "-c" "echo \"$$HOME\" is 100%% \\ here"''
          ];
          # (A regular expression may not carry store paths' context.)
          missingParts = builtins.filter (
            p: !(lib.hasInfix (builtins.unsafeDiscardStringContext p) demo.ExecStart)
          ) expectedExecStartParts;
        in
        {
          package = self.packages.${system}.nucleus;

          # The plain-Nix tests of nix/lib.nix (also run by tests/nix_eval.rs).
          lib-tests =
            let
              results = import ./tests/nix/lib-tests.nix { inherit nucleusLib; };
            in
            if results.failures == [ ] then
              pkgs.runCommand "nucleus-lib-tests" { } ''
                echo "${toString results.passed} passed" > $out
              ''
            else
              throw "nix/lib.nix tests failed: ${builtins.toJSON results.failures}";

          # The NixOS module evaluated with lib.nixosSystem: the good
          # configuration raises no assertion and yields the expected unit;
          # the bad one raises every expected assertion.
          module-eval =
            if goodFailures != [ ] then
              throw "module-config.nix raised: ${lib.concatStringsSep "; " goodFailures}"
            else if missingBad != [ ] then
              throw "module-bad-config.nix did not raise: ${lib.concatStringsSep "; " missingBad} (it raised: ${lib.concatStringsSep "; " badFailures})"
            else if missingParts != [ ] then
              throw "ExecStart of nucleus-demo lacks: ${lib.concatStringsSep " | " missingParts}"
            else if units ? "nucleus-off.service" then
              throw "a disabled container produced a unit"
            else if !(units ? "nucleus-minimal.service") then
              throw "the container with default options produced no unit"
            else
              pkgs.runCommand "nucleus-module-eval"
                {
                  expected = lib.concatStringsSep "\n" expectedUnitLines + "\n";
                  passAsFile = [ "expected" ];
                }
                ''
                  unit=${units."nucleus-demo.service".unit}/nucleus-demo.service
                  while IFS= read -r line; do
                    if ! grep -qxF -- "$line" "$unit"; then
                      echo "nucleus-demo.service lacks the line: $line" >&2
                      cat "$unit" >&2
                      exit 1
                    fi
                  done < "$expectedPath"
                  grep -qF 'NUCLEUS_STATE_ROOT=/run/nucleus-demo' "$unit"
                  cp "$unit" $out
                '';
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.gvisor
            pkgs.nix
          ];
          env.RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
        };
      });

      # nixfmt (RFC 166 style, formerly nixfmt-rfc-style) over the whole tree.
      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
