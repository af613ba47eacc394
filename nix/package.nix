# nucleus, built from this repository, with gVisor's runsc wired in.
# Used by flake.nix (packages.nucleus) and as the NixOS module's default
# package; callable as `pkgs.callPackage ./nix/package.nix { }`.
{
  lib,
  rustPlatform,
  makeWrapper,
  pkg-config,
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
  # rebuild the package. Targets cargo may find by convention are kept when
  # present.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      (lib.fileset.maybeMissing ../build.rs)
      (lib.fileset.maybeMissing ../benches)
      (lib.fileset.maybeMissing ../examples)
      (lib.fileset.maybeMissing ../tests)
      (lib.fileset.maybeMissing ../README.md)
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # NAR hashing links libcrypto for its SHA-256, as Nix does.
  nativeBuildInputs = [
    makeWrapper
    pkg-config
  ];
  buildInputs = [ openssl ];

  # Only the library's unit tests run in the build. The integration tests in
  # tests/*.rs are end-to-end: they need root, runsc, a Nix store and the
  # nix CLI, none of which the build sandbox has, so they run from CI and
  # `cargo test` outside Nix.
  cargoTestFlags = [ "--lib" ];
  # Two unit tests look at the host's /usr, which the build sandbox lacks
  # (host mode binds /usr; "/usr/bin" must resolve to be refused as a
  # non-store path). They run with `cargo test` outside the sandbox.
  checkFlags = [
    "--skip=rootfs::tests::host_mode_shows_system_dirs_and_the_store"
    "--skip=nix::installable::tests::a_path_outside_the_store_is_refused"
  ];

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
