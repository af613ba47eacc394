# What the module refuses in module-bad-config.nix, by the words of each
# assertion's message; shared by the flake's checks and tests/nix_eval.rs.
[
  "services.nucleus.containers.bad: name: '-bad' must match"
  "services.nucleus.containers.bad: serviceName: 'nucleus bad' must be"
  "services.nucleus.containers.bad: volumes: 'relative/dir:/data': the source must be an absolute host path"
  "services.nucleus.containers.bad: secrets: '/nix/store/"
  "services.nucleus.containers.bad: environmentFiles: "
  "is a Nix path, which would be copied into the world-readable store"
  "services.nucleus.containers.bad: credentials: 'no/slash' is not a credential name"
  "services.nucleus.containers.bad: hooks: poststop: '/usr/bin/true' is not a program inside /nix/store"
  "services.nucleus.containers.bad: hooks: runsc cannot run startContainer hooks"
  "services.nucleus.containers.bad: dependsOn: 'missing' is not an enabled container"
]
