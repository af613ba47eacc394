# nucleus, built from this repository, with gVisor's runsc wired in.
# Used by flake.nix (packages.nucleus) and as the NixOS module's default
# package; callable as `pkgs.callPackage ./nix/package.nix { }`.
{
  lib,
  rustPlatform,
  makeWrapper,
  openssl,
  gvisor,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "nucleus";
  inherit (cargoToml.package) version;

  # Only what cargo reads, so editing the Nix files, docs or CI does not
  # rebuild the package; targets cargo may find by convention are kept
  # when present. (cleanSourceWith rather than lib.fileset, which needs
  # Nix 2.14's builtins.readFileType.)
  src = lib.cleanSourceWith {
    name = "nucleus-source";
    src = ../.;
    filter =
      path: type:
      let
        relative = lib.removePrefix (toString ../. + "/") (toString path);
        topLevel = builtins.head (lib.splitString "/" relative);
      in
      builtins.elem relative [
        "Cargo.toml"
        "Cargo.lock"
        "build.rs"
        "README.md"
      ]
      || builtins.elem topLevel [
        "src"
        "benches"
        "examples"
        "tests"
      ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ makeWrapper ];

  # Bulk hashing (NARs, image layers) loads libcrypto's SHA-256, as Nix
  # uses it, the first time it is needed rather than at every start: the
  # build names the library to load (see src/sha256.rs).
  env.NUCLEUS_LIBCRYPTO = "${lib.getLib openssl}/lib/libcrypto.so";

  # Only the library's unit tests run in the build; they need nothing of
  # the host (tests/nix_sandbox.rs runs them in a Nix sandbox to keep it
  # so). The integration tests in tests/*.rs are end-to-end: they need
  # root, runsc, a Nix store and the nix CLI, none of which the build
  # sandbox has, so they run from CI and `cargo test` outside Nix.
  cargoTestFlags = [ "--lib" ];

  # nucleus looks for runsc in --runsc, then NUCLEUS_RUNSC, then PATH: a
  # default for NUCLEUS_RUNSC makes `nix run .#nucleus -- run …` work with
  # no other setup, while an explicit flag or variable still wins.
  postInstall = ''
    wrapProgram $out/bin/nucleus \
      --set-default NUCLEUS_RUNSC ${lib.getExe' gvisor "runsc"}
  '';

  meta = {
    inherit (cargoToml.package) description;
    license = lib.licenses.asl20;
    mainProgram = "nucleus";
    # gVisor's own platforms.
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
}
