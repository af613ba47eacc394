# A stand-in for the few nixpkgs attributes nix/module.nix, nix/rootfs.nix
# and nix/test-run.nix use, built from the host's static busybox without
# nixpkgs (see tests/closures/lib.nix). Builders behave as nixpkgs' do where
# the callers can tell: runCommand runs its script with `set -eu` and $out,
# writeText and writeShellScriptBin write what they are given, buildEnv
# links the packages' directories.
{
  busyboxFile ? /usr/bin/busybox,
  lib ? import ./lib.nix,
  # The platform the package set is for (its builds run on this machine's).
  system ? builtins.currentSystem,
}:
let
  closures = import ../../closures/lib.nix { inherit busyboxFile; };
  inherit (closures) busybox;
  platform = {
    inherit system;
    canExecute = other: other.system == system;
  };

  runCommand =
    name: env: script:
    derivation (
      removeAttrs env [
        "meta"
        "passthru"
      ]
      // {
        inherit name;
        system = builtins.currentSystem;
        builder = "${busybox}/bin/sh";
        PATH = "${busybox}/bin";
        args = [
          "-c"
          ''
            set -eu
            ${script}
          ''
        ];
      }
    );
in
{
  inherit lib busybox runCommand;
  stdenv = {
    hostPlatform = platform;
    buildPlatform = platform;
  };
  runtimeShell = "${busybox}/bin/sh";

  # Programs the test configurations name: /bin/hello, coreutils' `true`.
  hello = import ../../closures/hello.nix { inherit busyboxFile; };
  coreutils = closures.toolbox "coreutils" "";
  # Only named in PATH by the units; never run.
  nix = runCommand "nix" { } "mkdir -p $out/bin";

  # Only what nix/package.nix takes, and nothing it builds: the flake's
  # outputs evaluate, but the stand-in cannot compile nucleus.
  callPackage =
    file: overrides:
    let
      f = import file;
      pkgs = import ./pkgs.nix { inherit busyboxFile lib system; };
    in
    f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // overrides);
  rustPlatform = {
    buildRustPackage =
      attrs:
      runCommand "${attrs.pname}-${attrs.version}" { inherit (attrs) src; } "exit 1"
      // {
        meta = attrs.meta or { };
      };
    rustLibSrc = runCommand "rust-lib-src" { } "exit 1";
  };
  makeWrapper = runCommand "make-wrapper" { } "exit 1";
  openssl = runCommand "openssl" { } "exit 1";
  gvisor = runCommand "gvisor" { } "exit 1";
  mkShell = _: runCommand "shell" { } "exit 1";
  nixfmt-tree = runCommand "nixfmt-tree" { } "exit 1";
  cargo = runCommand "cargo" { } "exit 1";
  rustc = runCommand "rustc" { } "exit 1";
  clippy = runCommand "clippy" { } "exit 1";
  rustfmt = runCommand "rustfmt" { } "exit 1";

  writeText =
    name: text:
    runCommand name {
      inherit text;
      passAsFile = [ "text" ];
    } ''cp "$textPath" "$out"'';

  writeShellScriptBin =
    name: text:
    runCommand name
      {
        inherit text;
        passAsFile = [ "text" ];
      }
      ''
        mkdir -p $out/bin
        { echo '#!${busybox}/bin/sh'; cat "$textPath"; } > $out/bin/${name}
        chmod +x $out/bin/${name}
      ''
    // {
      meta.mainProgram = name;
    };

  buildEnv =
    {
      name,
      paths,
      pathsToLink ? [ "/" ],
    }:
    runCommand name { } ''
      for package in ${toString paths}; do
        for dir in ${toString pathsToLink}; do
          [ -d "$package$dir" ] || continue
          mkdir -p "$out$dir"
          for entry in "$package$dir"/*; do
            [ -e "$out$dir/''${entry##*/}" ] || ln -s "$entry" "$out$dir/"
          done
        done
      done
    '';
}
