# nix/module.nix evaluated as NixOS would evaluate it, without nixpkgs: the
# stand-in module system (stand-in/lib.nix), NixOS's options the module
# uses (stand-in/nixos.nix) and a busybox-built package set
# (stand-in/pkgs.nix). Give `lib = import <nixpkgs/lib>` to evaluate it with
# nixpkgs' own module system instead.
#
#   nix-instantiate --eval --strict --json tests/nix/eval-module.nix \
#     --arg configuration ./tests/nix/module-config.nix -A summary
{
  busyboxFile ? /usr/bin/busybox,
  # A NixOS module setting services.nucleus.
  configuration,
  lib ? import ./stand-in/lib.nix,
  # The nucleus binary to use as services.nucleus.package, and the libraries
  # it needs as JSON (see host-program.nix); without it, a store path that is
  # never built stands in.
  nucleusProgram ? null,
  nucleusLibrariesJson ? "{}",
}:
let
  pkgs = import ./stand-in/pkgs.nix { inherit busyboxFile lib; };

  package =
    if nucleusProgram == null then
      "/nix/store/00000000000000000000000000000000-nucleus-0.0.0"
    else
      import ./host-program.nix {
        inherit busyboxFile;
        name = "nucleus";
        program = nucleusProgram;
        libraries = builtins.fromJSON nucleusLibrariesJson;
      };

  system = lib.evalModules {
    modules = [
      ./stand-in/nixos.nix
      ../../nix/module.nix
      configuration
      { services.nucleus.package = package; }
    ];
    specialArgs = { inherit pkgs; };
  };
  inherit (system) config;
in
{
  inherit config;

  summary = {
    failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
    inherit (config) warnings;
    units = builtins.mapAttrs (_: unit: unit.text) config.systemd.units;
    package = toString config.services.nucleus.package;
    checks = map (check: check.name) config.system.checks;
  };

  # The argument checks NixOS would build (`nix-build -A checks`).
  checks = config.system.checks;
}
