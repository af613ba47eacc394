# The outputs of a stand-in for the nixpkgs flake: `lib` (./lib.nix and the
# few functions flake.nix and nix/package.nix use besides, with
# `nixosSystem` evaluating ./nixos.nix) and `legacyPackages` (./pkgs.nix).
# tests/nix_flake.rs puts it behind a flake.nix and runs the real
# `nix flake check` on nucleus's flake with it, which builds nothing. Give
# `baseLib = import <nixpkgs/lib>` to use nixpkgs' own lib instead (the
# functions below are then nixpkgs' own where it has them).
{
  busyboxFile ? /usr/bin/busybox,
  baseLib ? import ./lib.nix,
}:
let
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # What flake.nix and nix/package.nix use besides.
  extras = {
    genAttrs = names: f: builtins.listToAttrs (map (n: baseLib.nameValuePair n (f n)) names);
    hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
    hasInfix =
      infix: s:
      builtins.any (i: builtins.substring i (builtins.stringLength infix) s == infix) (
        builtins.genList (i: i) (builtins.stringLength s + 1)
      );
    removePrefix =
      prefix: s:
      if lib.hasPrefix prefix s then
        builtins.substring (builtins.stringLength prefix) (-1) s
      else
        s;
    splitString = sep: s: builtins.filter builtins.isString (builtins.split (lib.escapeRegex sep) s);
    escapeRegex = builtins.replaceStrings [ "." "/" ] [ "\\." "/" ];
    getExe = package: "${package}/bin/${package.meta.mainProgram}";
    getExe' = package: name: "${package}/bin/${name}";
    importTOML = file: builtins.fromTOML (builtins.readFile file);
    cleanSourceWith =
      {
        src,
        filter,
        name ? "source",
      }:
      builtins.path {
        path = src;
        inherit filter name;
      };
    licenses.asl20.shortName = "asl20";
  };

  lib =
    extras
    // baseLib
    // {
    # NixOS: the stand-in's options, and the few a system needs anyway.
    nixosSystem =
      { modules }:
      let
        system = baseLib.evalModules {
          modules = [
            ./nixos.nix
            {
              options = {
                nixpkgs.hostPlatform = baseLib.mkOption { type = baseLib.types.str; };
                boot.loader.grub.enable = baseLib.mkOption { type = baseLib.types.bool; };
                fileSystems = baseLib.mkOption { type = baseLib.types.attrsOf baseLib.types.anything; };
                system.stateVersion = baseLib.mkOption { type = baseLib.types.str; };
              };
            }
          ]
          ++ modules;
          specialArgs.pkgs = legacyPackages.${system.config.nixpkgs.hostPlatform};
        };
      in
      system;
  };

  legacyPackages = lib.genAttrs systems (
    system:
    import ./pkgs.nix {
      inherit busyboxFile lib system;
    }
  );
in
{
  inherit lib legacyPackages;
}
