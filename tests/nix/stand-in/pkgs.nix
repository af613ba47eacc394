# A stand-in for the few nixpkgs attributes nix/module.nix, nix/rootfs.nix
# and nix/test-run.nix use, built from the host's static busybox without
# nixpkgs (see tests/closures/lib.nix). Builders behave as nixpkgs' do where
# the callers can tell: runCommand runs its script with `set -eu` and $out,
# writeText and writeShellScriptBin write what they are given, buildEnv
# links the packages' directories.
{
  busyboxFile ? /usr/bin/busybox,
  lib ? import ./lib.nix,
}:
let
  closures = import ../../closures/lib.nix { inherit busyboxFile; };
  inherit (closures) busybox;
  system = builtins.currentSystem;
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
        inherit name system;
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

  callPackage = _: _: throw "the stand-in nixpkgs cannot build nucleus: set services.nucleus.package";

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
