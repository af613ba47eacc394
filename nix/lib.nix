# nucleus's Nix library, in plain Nix: builtins only, no nixpkgs `lib`, so
# that all of it except `mkRootfs` and the test runner evaluates with a bare
# `nix-instantiate` (see tests/nix_eval.rs and tests/nix/lib-tests.nix).
#
# It builds arguments; it does not judge them. Whether nucleus accepts an
# argument list is for nucleus to say, and the NixOS module asks it with
# `nucleus check-args` while the system is built. Checked here is only what
# Nix alone can see: values that would put a secret into the world-readable
# store, hooks outside the store, and names that also name units and
# directories.
#
#   mkRunArgs          attribute set -> the argument list that follows `nucleus`
#   escapeSystemdExecArg(s)  quoting for ExecStart= and friends (not a shell)
#   mkServiceCommands  one container of the NixOS module -> its unit's commands
#                      and the argument list `check-args` is given
#   containerProblems  one container -> what Nix alone refuses, as messages
#
# and, from the files beside it, what needs nixpkgs:
#   mkRootfs           a buildEnv usable as nucleus's INSTALLABLE (rootfs.nix)
#   mkTestRunner, mkTestRun  a Nix-built test suite run under nucleus (test-run.nix)
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    elemAt
    filter
    floor
    hasContext
    isAttrs
    isFloat
    isInt
    isList
    isPath
    isString
    match
    replaceStrings
    split
    storeDir
    stringLength
    substring
    toJSON
    typeOf
    ;

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;

  # A word of a unit's command line that holds a systemd specifier: `systemd`
  # is its text inside the double quotes (already escaped), `value` what
  # nucleus receives once systemd has expanded it.
  isSystemdWord = v: isAttrs v && (v._type or null) == "nucleus-systemd-word";

  # A value for the command line. A path keeps its own name (it is not copied
  # into the store: `./result` stays a path nucleus resolves itself); a
  # derivation becomes its output path, with its context, so that whatever
  # holds the arguments keeps the closure alive.
  toArg =
    v:
    if isString v || isSystemdWord v then
      v
    else if isInt v || isPath v || (isAttrs v && (v ? outPath || v ? __toString)) then
      toString v
    else if isFloat v then
      formatDecimal v
    else
      throw "nucleus: a ${typeOf v} cannot be a command-line argument";

  # `toString 1.5` is "1.500000", which `--cpus` refuses (at most three
  # decimals): print floats in thousandths, without trailing zeros.
  # (A negative number is left for nucleus to refuse.)
  formatDecimal =
    x:
    let
      millis = floor (x * 1000 + 0.5);
      digits = toString (1000 + millis - millis / 1000 * 1000);
      fraction = elemAt (match "1([0-9]*[1-9])?0*" digits) 0;
    in
    if x < 0 then
      toString x
    else
      toString (millis / 1000) + (if fraction == null then "" else ".${fraction}");

  # How a field's value becomes arguments.
  value = flag: v: [
    flag
    (toArg v)
  ];
  list =
    flag: vs:
    if isList vs then concatMap (value flag) vs else throw "nucleus: ${flag} takes a list, not a ${typeOf vs}";
  # Attribute sets are emitted in key order (attrNames is sorted), so the
  # arguments, and with them the bundle digest, never depend on how the set
  # was written.
  keyValues =
    flag: set:
    concatMap (k: [
      flag
      "${k}=${toArg set.${k}}"
    ]) (attrNames set);
  namedValues =
    flag: set:
    concatMap (k: [
      flag
      k
      (toArg set.${k})
    ]) (attrNames set);
  switch = flag: on: if on then [ flag ] else [ ];

  # The fields of mkRunArgs that become flags, in the order it emits them.
  flagTable = [
    (flag "name" "--name" value)
    (flag "hostname" "--hostname" value)
    (flag "environmentFiles" "--env-file" list)
    (flag "environment" "-e" keyValues)
    (flag "ports" "-p" list)
    (flag "readyTcpPort" "--ready-tcp" value)
    (flag "volumes" "-v" list)
    (flag "tmpfs" "--tmpfs" list)
    (flag "secrets" "--secret" list)
    (flag "context" "--context" value)
    (flag "user" "--user" value)
    (flag "groupAdd" "--group-add" list)
    (flag "workdir" "-w" value)
    (flag "memory" "--memory" value)
    (flag "cpus" "--cpus" value)
    (flag "pids" "--pids" value)
    (flag "seccompProfile" "--seccomp-profile" value)
    (flag "seccompProfileSha256" "--seccomp-profile-sha256" value)
    (flag "hooks" "--hooks" value)
    (flag "network" "--network" value)
    (flag "platform" "--platform" value)
    (flag "rootless" "--rootless" switch)
    (flag "timeout" "--timeout" value)
    (flag "bootTimeout" "--boot-timeout" value)
    (flag "runsc" "--runsc" value)
    (flag "tty" "--tty" switch)
    (flag "interactive" "--interactive" switch)
    (flag "keep" "--keep" switch)
    (flag "replace" "--replace" switch)
    (flag "attr" "-A" value)
    (flag "arg" "--arg" namedValues)
    (flag "argstr" "--argstr" namedValues)
  ];
  flag = field: name: emit: {
    inherit field emit;
    flag = name;
  };

  # Fields that are not flags: more options, the INSTALLABLE, the command.
  positionalFields = [
    "extraOptions"
    "closure"
    "command"
  ];
  runArgFields = map (e: e.field) flagTable ++ positionalFields;

  # mkRunArgs: { name, closure, command, environment, ... } -> [ "run" ... ]
  #
  # Absent and null fields emit nothing. `extraOptions` (more `nucleus run`
  # options, global ones such as `--verbose` included) follow the flags;
  # then the closure (a store path, a derivation, or any INSTALLABLE string
  # such as "./result"); then `--` and the command. Without a command the
  # installable's main program runs, so an empty command is a mistake.
  mkRunArgs =
    args:
    let
      unknown = filter (n: !(elem n runArgFields)) (attrNames args);
      get = field: args.${field} or null;
    in
    if unknown != [ ] then
      throw "nucleus: mkRunArgs: unknown field(s) ${concatStringsSep ", " unknown}; known: ${concatStringsSep ", " runArgFields}"
    else if get "command" == [ ] then
      throw "nucleus: mkRunArgs: command is empty; give the program and its arguments, or null for the installable's main program"
    else
      [ "run" ]
      ++ concatMap (e: if get e.field == null then [ ] else e.emit e.flag (get e.field)) flagTable
      ++ (if get "extraOptions" == null then [ ] else map toArg (get "extraOptions"))
      ++ (if get "closure" == null then [ ] else [ (toArg (get "closure")) ])
      ++ (
        if get "command" == null then
          [ ]
        else if isList (get "command") then
          [ "--" ] ++ map toArg (get "command")
        else
          throw "nucleus: mkRunArgs: command must be a list (the program and its arguments)"
      );

  # ---------------------------------------------------------------------
  # systemd quoting, nixpkgs' formula: a JSON string is a valid double-quoted
  # word for systemd (its escapes, control characters included, are C
  # escapes systemd reads back), and doubling `%` and `$` keeps specifiers
  # and variables from expanding. Nothing here is shell syntax.
  escapeSystemdExecArg =
    arg:
    let
      v = toArg arg;
    in
    if isSystemdWord v then
      "\"${v.systemd}\""
    else
      replaceStrings
        [
          "%"
          "$"
        ]
        [
          "%%"
          "$$"
        ]
        (toJSON v);

  escapeSystemdExecArgs = args: concatStringsSep " " (map escapeSystemdExecArg args);

  # What nucleus receives for an argument once systemd has expanded it.
  expandSystemdWord = arg: if isSystemdWord arg then arg.value else arg;

  # "--secret %d/ID:/run/secrets/ID": the credential ID of the unit (systemd
  # LoadCredential=), which systemd puts in the unit's credentials directory.
  credentialSecret =
    serviceName: id:
    let
      rest = "/${id}:/run/secrets/${id}";
      inner = escapeSystemdExecArg rest;
    in
    {
      _type = "nucleus-systemd-word";
      systemd = "%d" + substring 1 (stringLength inner - 2) inner;
      value = "/run/credentials/${serviceName}.service" + rest;
    };

  # ---------------------------------------------------------------------
  # The NixOS module's per-container logic, kept here to be tested without
  # nixpkgs. `container` is a container's option set.

  # The mkRunArgs fields of a container (its `hooks` and `seccompProfile`
  # already turned into files), credentials as `--secret %d/…`.
  containerRunArgs =
    container:
    builtins.intersectAttrs (builtins.listToAttrs (
      map (n: {
        name = n;
        value = null;
      }) runArgFields
    )) container
    // {
      secrets =
        (container.secrets or [ ])
        ++ map (credentialSecret container.serviceName) (attrNames (container.credentials or { }));
    };

  mkServiceCommands =
    { package, container }:
    let
      exe = "${toString package}/bin/nucleus";
      runArgs = mkRunArgs (containerRunArgs container);
      deleteLine = escapeSystemdExecArgs [
        exe
        "delete"
        "--force"
        container.name
      ];
      # Kept store views keep their store paths' files alive: a stopped
      # unit lets them go.
      gcLine = escapeSystemdExecArgs [
        exe
        "gc"
      ];
    in
    {
      execStart = escapeSystemdExecArgs ([ exe ] ++ runArgs);
      # "-": a container that is not there is not an error.
      execStartPre = "-" + deleteLine;
      execStopPost = [
        ("-" + deleteLine)
        ("-" + gcLine)
      ];
      # What `nucleus check-args` is given: the arguments as nucleus will
      # receive them from systemd, specifiers expanded.
      checkArgs = map expandSystemdWord runArgs;
      # LoadCredential=ID:PATH (systemd expands specifiers there too).
      loadCredentials = map (
        id: "${id}:${replaceStrings [ "%" ] [ "%%" ] container.credentials.${id}}"
      ) (attrNames (container.credentials or { }));
    };

  # ---------------------------------------------------------------------
  # What Nix alone can refuse. Returns messages; [ ] when there is nothing.

  problemIf = condition: message: if condition then [ message ] else [ ];

  # nucleus's container names.
  namePattern = "[A-Za-z0-9][A-Za-z0-9_.-]{0,127}";

  # A host file that must never pass through the store: a string naming an
  # absolute host path, with no store path in it.
  hostFileProblems =
    what: v:
    if isPath v then
      [ "${what}: ${toString v} is a Nix path, which would be copied into the world-readable store; give the host path as a string" ]
    else
      problemIf (hasContext v || hasPrefix "${storeDir}/" v)
        "${what}: '${v}' is in the Nix store, which every user can read; give a host path outside it as a string"
      ++ problemIf (!hasPrefix "/" v) "${what}: '${v}' is not an absolute host path";

  # Hooks run on the host with nucleus's privileges, so each program must be
  # a file inside the store. nucleus checks that again when it starts, but
  # by then a mistake only shows as a unit that keeps restarting.
  runnablePhases = [
    "prestart"
    "createRuntime"
    "poststart"
    "poststop"
  ];
  hookProblems =
    hooks:
    let
      # "/nix/store/…-hook/bin/hook" -> [ "…-hook" "bin" "hook" ]
      inStoreDir = p: filter (c: isString c && c != "") (split "/" (substring (stringLength storeDir) (-1) p));
      inStore =
        hook:
        isAttrs hook
        && isString (hook.path or null)
        && hasPrefix "${storeDir}/" hook.path
        && inStoreDir hook.path != [ ]
        && !(elem "." (inStoreDir hook.path) || elem ".." (inStoreDir hook.path));
      phaseProblems =
        phase:
        if !(elem phase runnablePhases) then
          [ "hooks: runsc cannot run ${phase} hooks; use one of ${concatStringsSep ", " runnablePhases}" ]
        else if !isList hooks.${phase} then
          [ "hooks: ${phase} must be a list of hooks" ]
        else
          concatMap (
            hook:
            problemIf (!inStore hook)
              "hooks: ${phase}: '${toString (hook.path or "")}' is not a program inside ${storeDir}: hooks run on the host and must be store files"
          ) hooks.${phase};
    in
    if isAttrs hooks then concatMap phaseProblems (attrNames hooks) else [ "hooks: expected an object of hook phases" ];

  # `container` is a container's options; `enabledContainers` the names of
  # all enabled ones (for dependsOn).
  containerProblems =
    { container, enabledContainers }:
    let
      c = container;
      sourceOf = s: elemAt (match "([^:]*)(:.*)?" s) 0;
      # An inline document, or a Nix path literal read now; a string names a
      # file Nix cannot read, which nucleus checks when it starts.
      hooks = if isPath c.hooks or null then builtins.fromJSON (builtins.readFile c.hooks) else c.hooks or null;
    in
    problemIf (match namePattern c.name == null) "name: '${c.name}' must match ${namePattern}"
    ++ problemIf (match "[A-Za-z0-9][A-Za-z0-9_.-]*" c.serviceName == null)
      "serviceName: '${c.serviceName}' must be letters, digits, '_', '.' and '-': it names the unit and its runtime directory"
    ++ concatMap (s: hostFileProblems "secrets" (sourceOf s)) (c.secrets or [ ])
    ++ concatMap (hostFileProblems "environmentFiles") (c.environmentFiles or [ ])
    ++ concatMap (
      id:
      problemIf (match "[A-Za-z0-9_][A-Za-z0-9_.-]*" id == null)
        "credentials: '${id}' is not a credential name (letters, digits, '_', '.', '-')"
      ++ hostFileProblems "credentials.${id}" c.credentials.${id}
    ) (attrNames (c.credentials or { }))
    # A service has no working directory worth resolving a relative path against.
    ++ concatMap (
      v: problemIf (!hasPrefix "/" (sourceOf v)) "volumes: '${v}': the source must be an absolute host path"
    ) (c.volumes or [ ])
    ++ concatMap (
      d: problemIf (!elem d enabledContainers) "dependsOn: '${d}' is not an enabled container"
    ) (c.dependsOn or [ ])
    ++ (if isAttrs hooks && !(hooks ? outPath) then hookProblems hooks else [ ]);

in
{
  inherit
    mkRunArgs
    runArgFields
    escapeSystemdExecArg
    escapeSystemdExecArgs
    expandSystemdWord
    credentialSecret
    containerRunArgs
    mkServiceCommands
    namePattern
    hookProblems
    containerProblems
    ;
  # Which field becomes which flag, for tests and documentation.
  flagsByField = builtins.listToAttrs (
    map (e: {
      name = e.field;
      value = e.flag;
    }) flagTable
  );
}
// import ./rootfs.nix
// import ./test-run.nix { inherit mkRunArgs; }
