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

      # Plain Nix (builtins only): mkRunArgs, the systemd quoting, the
      # module's per-container logic; and mkRootfs and the test runner,
      # which take `pkgs`.
      nucleusLib = import ./nix/lib.nix;

      # The test runner with this flake's defaults: nixpkgs and nucleus for
      # the system the tests are built for.
      withFlakeDefaults =
        f: args:
        f (
          {
            pkgs = nixpkgs.legacyPackages.${args.tests.system};
            nucleus = self.packages.${args.tests.system}.nucleus;
          }
          // args
        );
    in
    {
      lib = nucleusLib // {
        mkTestRunner = withFlakeDefaults nucleusLib.mkTestRunner;
        mkTestRun = withFlakeDefaults nucleusLib.mkTestRun;
      };

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

      # An attribute set rather than the path itself: the `nix flake check`
      # of older Nix (2.8 among them) accepts only a function or an
      # attribute set here.
      nixosModules = {
        nucleus = {
          imports = [ ./nix/module.nix ];
        };
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

          # The least a NixOS system needs to evaluate, around a test
          # configuration of services.nucleus.
          evalSystem =
            config:
            nixpkgs.lib.nixosSystem {
              modules = [
                self.nixosModules.default
                config
                {
                  nixpkgs.hostPlatform = system;
                  boot.loader.grub.enable = false;
                  fileSystems."/" = {
                    device = "none";
                    fsType = "tmpfs";
                  };
                  system.stateVersion = "25.11";
                }
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

          # What Nix alone refuses in module-bad-config.nix, by the words of
          # each message (expected-problems.nix, shared with tests/nix_eval.rs).
          expectedBad = import ./tests/nix/expected-problems.nix;
          missingBad = builtins.filter (
            want: !(builtins.any (msg: lib.hasInfix want msg) badFailures)
          ) expectedBad;

          units = good.config.systemd.units;
          demo = good.config.systemd.services.nucleus-demo.serviceConfig;
          package = good.config.services.nucleus.package;
          exe = "${package}/bin/nucleus";

          # Lines the generated unit file must contain, verbatim. The
          # command and environment hold %, $, quotes, a backslash and a
          # control character, which must reach nucleus as written; the
          # credential's %d must reach systemd as a specifier.
          expectedUnitLines = [
            "Type=notify"
            ''ExecStartPre=-"${exe}" "delete" "--force" "demo"''
            ''ExecStopPost=-"${exe}" "delete" "--force" "demo"''
            "LoadCredential=token:/var/lib/secrets/demo-token"
            "Restart=on-failure"
            "KillMode=mixed"
            "KillSignal=SIGTERM"
            "RuntimeDirectory=nucleus-demo"
            "RuntimeDirectoryPreserve=yes"
            "After=network-online.target nucleus-database.service"
            "Wants=network-online.target"
            "Requires=nucleus-database.service"
            "ExecStart=${demo.ExecStart}"
          ];
          expectedExecStartParts = [
            ''"${exe}" "run" "--name" "demo" "--hostname" "demo"''
            ''"--env-file" "/run/secrets/demo.env" "-e" "ANSWER=42" "-e" "GREETING=hi %%h"''
            ''"-p" "127.0.0.1:8080:80" "--ready-tcp" "80"''
            ''"-v" "/srv/demo:/data:rw" "--tmpfs" "/cache:64M"''
            ''"--secret" "/var/lib/secrets/demo-key:/run/secrets/key" "--secret" "%d/token:/run/secrets/token"''
            ''"--user" "1000:1000" "-w" "/data" "--memory" "128M" "--cpus" "0.5" "--pids" "64"''
            ''"--seccomp-profile-sha256" "''
            ''"--hooks" "''
            ''"--timeout" "3600" "--verbose"''
            ''"--" "/bin/sh" "-c" "echo \"$$HOME\" is 100%% \\ here\u0007"''
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
          # configuration raises no assertion, yields the expected unit, and
          # nucleus check-args accepts its containers' arguments; the bad
          # one raises every expected assertion.
          module-eval =
            if goodFailures != [ ] then
              throw "module-config.nix raised: ${lib.concatStringsSep "; " goodFailures}"
            else if missingBad != [ ] then
              throw "module-bad-config.nix did not raise: ${lib.concatStringsSep "; " missingBad} (it raised: ${lib.concatStringsSep "; " badFailures})"
            else if missingParts != [ ] then
              throw "ExecStart of nucleus-demo lacks: ${lib.concatStringsSep " | " missingParts}"
            else if units ? "nucleus-off.service" then
              throw "a disabled container produced a unit"
            else if !(units ? "nucleus-minimal.service" && units ? "nucleus-database.service") then
              throw "an enabled container produced no unit"
            else
              pkgs.runCommand "nucleus-module-eval"
                {
                  expected = lib.concatStringsSep "\n" expectedUnitLines + "\n";
                  passAsFile = [ "expected" ];
                  # `nucleus check-args` accepts every container's arguments.
                  argumentChecks = good.config.system.checks;
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
          env = {
            RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
            # The libcrypto a build here loads for bulk hashing (see
            # src/sha256.rs): NixOS has no loader cache to find one by name.
            NUCLEUS_LIBCRYPTO = "${pkgs.lib.getLib pkgs.openssl}/lib/libcrypto.so";
          };
        };
      });

      # nixfmt (RFC 166 style, formerly nixfmt-rfc-style) over the whole tree.
      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
