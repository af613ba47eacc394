# nucleus's Nix library, in plain Nix: builtins only, no nixpkgs `lib`, so
# that all of it except `mkRootfs` can be evaluated and tested with a bare
# `nix-instantiate --eval --strict --json` (see tests/nix_eval.rs and
# tests/nix/lib-tests.nix).
#
#   mkRunArgs        attribute set -> the argument list that follows `nucleus`
#   validateRunArgs  attribute set -> what the CLI would refuse, as messages
#   escapeSystemdExecArg(s)  quoting for systemd's ExecStart= (not a shell)
#   mkExecCommands / mkExecStart  one container of the NixOS module -> its
#                    ExecStart=, ExecStartPre=, ExecStopPost= lines
#   validateContainer  the module's assertions for one container
#   optionFlags      which option becomes which `nucleus run` flag
#   mkRootfs         a buildEnv usable as nucleus's INSTALLABLE (needs pkgs)
let
  inherit (builtins)
    all
    attrNames
    concatMap
    concatStringsSep
    elem
    elemAt
    filter
    floor
    foldl'
    genList
    hasContext
    head
    isAttrs
    isBool
    isFloat
    isInt
    isList
    isPath
    isString
    length
    listToAttrs
    map
    match
    replaceStrings
    split
    storeDir
    stringLength
    substring
    typeOf
    ;

  # ---------------------------------------------------------------------
  # Small helpers (what nixpkgs' lib would give us).

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;

  chars = s: genList (i: substring i 1 s) (stringLength s);

  # "a:b:c" -> [ "a" "b" "c" ]
  splitOn = sep: s: filter isString (split sep s);

  # "a:b:c" -> { before = "a"; after = "b:c"; } or null without a ":".
  splitFirst =
    s:
    let
      m = match "([^:]*):(.*)" s;
    in
    if m == null then
      null
    else
      {
        before = elemAt m 0;
        after = elemAt m 1;
      };

  digitValue =
    c:
    {
      "0" = 0;
      "1" = 1;
      "2" = 2;
      "3" = 3;
      "4" = 4;
      "5" = 5;
      "6" = 6;
      "7" = 7;
      "8" = 8;
      "9" = 9;
    }
    .${c};

  # A string of decimal digits -> integer (leading zeros allowed).
  parseDigits = s: foldl' (acc: c: acc * 10 + digitValue c) 0 (chars s);

  isDerivation = v: isAttrs v && (v.type or null) == "derivation";

  # Anything that Nix would interpolate: strings, paths, derivations and
  # attribute sets with an outPath or __toString.
  isStringLike = v: isString v || isPath v || (isAttrs v && (v ? outPath || v ? __toString));

  # ---------------------------------------------------------------------
  # Coercion of option values to command-line strings.

  # `toString` keeps a path as its own absolute name (it is *not* copied
  # into the store: `./result` stays a path nucleus resolves itself) and
  # turns a derivation into its output path, with its string context, so
  # a unit that names the closure also keeps it alive.
  toArg =
    field: v:
    if isString v then
      v
    else if isInt v then
      toString v
    else if isFloat v then
      formatDecimal field v
    else if isPath v || isStringLike v then
      toString v
    else
      throw "nucleus: ${field}: cannot use a ${typeOf v} as a command-line argument";

  # `toString 1.5` is "1.500000", which `--cpus` refuses (at most three
  # decimals): print floats in thousandths, without trailing zeros.
  formatDecimal =
    field: x:
    let
      millis = floor (x * 1000 + 0.5);
      whole = millis / 1000;
      frac = millis - whole * 1000;
      pad3 =
        n:
        if n < 10 then
          "00${toString n}"
        else if n < 100 then
          "0${toString n}"
        else
          toString n;
      trimZeros =
        s:
        if stringLength s > 0 && substring (stringLength s - 1) 1 s == "0" then
          trimZeros (substring 0 (stringLength s - 1) s)
        else
          s;
    in
    if x < 0 then
      throw "nucleus: ${field}: ${toString x} is negative"
    else if frac == 0 then
      toString whole
    else
      "${toString whole}.${trimZeros (pad3 frac)}";

  # ---------------------------------------------------------------------
  # The flag table: one entry per option, in the order mkRunArgs emits
  # them. `flag` is what mkRunArgs writes; `long` is the same option's long
  # name where `flag` is the short one. `kind` says how a value becomes
  # arguments:
  #   scalar  one value        -> [ flag value ]
  #   list    list of strings  -> [ flag v1 flag v2 ... ]
  #   env     attribute set    -> [ "-e" "K1=V1" "-e" "K2=V2" ... ], by key
  flagTable = [
    {
      option = "name";
      flag = "--name";
      kind = "scalar";
    }
    {
      option = "hostname";
      flag = "--hostname";
      kind = "scalar";
    }
    {
      option = "environment";
      flag = "-e";
      long = "--env";
      kind = "env";
    }
    {
      option = "volumes";
      flag = "-v";
      long = "--volume";
      kind = "list";
    }
    {
      option = "tmpfs";
      flag = "--tmpfs";
      kind = "list";
    }
    {
      option = "secrets";
      flag = "--secret";
      kind = "list";
    }
    {
      option = "user";
      flag = "--user";
      kind = "scalar";
    }
    {
      option = "workdir";
      flag = "-w";
      long = "--workdir";
      kind = "scalar";
    }
    {
      option = "memory";
      flag = "--memory";
      kind = "scalar";
    }
    {
      option = "cpus";
      flag = "--cpus";
      kind = "scalar";
    }
    {
      option = "pids";
      flag = "--pids";
      kind = "scalar";
    }
    {
      option = "seccompProfile";
      flag = "--seccomp-profile";
      kind = "scalar";
    }
    {
      option = "seccompProfileSha256";
      flag = "--seccomp-profile-sha256";
      kind = "scalar";
    }
    {
      option = "hooks";
      flag = "--hooks";
      kind = "scalar";
    }
    {
      option = "network";
      flag = "--network";
      kind = "scalar";
    }
    {
      option = "platform";
      flag = "--platform";
      kind = "scalar";
    }
    {
      option = "timeout";
      flag = "--timeout";
      kind = "scalar";
    }
  ];

  # Fields of mkRunArgs that are not flags.
  positionalFields = [
    "closure"
    "command"
    "extraArgs"
  ];

  runArgFields = map (e: e.option) flagTable ++ positionalFields;

  # `{ name = null; ... }`, for builtins.intersectAttrs.
  runArgFieldSet = listToAttrs (
    map (n: {
      name = n;
      value = null;
    }) runArgFields
  );

  emitFlag =
    args: e:
    let
      v = args.${e.option} or null;
      where = "mkRunArgs.${e.option}";
    in
    if v == null then
      [ ]
    else if e.kind == "scalar" then
      [
        e.flag
        (toArg where v)
      ]
    else if e.kind == "list" then
      if !isList v then
        throw "nucleus: ${where} must be a list of strings"
      else
        concatMap (x: [
          e.flag
          (toArg where x)
        ]) v
    else if !isAttrs v || isStringLike v then
      throw "nucleus: ${where} must be an attribute set of KEY = VALUE"
    else
      # attrNames is sorted, so the order (and the bundle digest) never
      # depends on how the set was written.
      concatMap (k: [
        e.flag
        "${k}=${toArg "${where}.${k}" v.${k}}"
      ]) (attrNames v);

  # ---------------------------------------------------------------------
  # mkRunArgs: { name, closure, command, environment, ... } -> [ "run" ... ]
  #
  # Absent and null fields emit nothing. The closure (a store path, a
  # derivation, or any INSTALLABLE string such as "./result") comes after
  # all flags; then "--" and the command, when there is a command.
  mkRunArgs =
    args:
    let
      unknown = filter (n: !(elem n runArgFields)) (attrNames args);
      closure = args.closure or null;
      command = args.command or null;
      extraArgs = args.extraArgs or null;
    in
    if !isAttrs args then
      throw "nucleus: mkRunArgs takes an attribute set"
    else if unknown != [ ] then
      throw "nucleus: mkRunArgs: unknown field(s) ${concatStringsSep ", " unknown}; known: ${concatStringsSep ", " runArgFields}"
    else
      [ "run" ]
      ++ concatMap (emitFlag args) flagTable
      ++ (
        if extraArgs == null then
          [ ]
        else if isList extraArgs then
          map (toArg "mkRunArgs.extraArgs") extraArgs
        else
          throw "nucleus: mkRunArgs.extraArgs must be a list"
      )
      ++ (if closure == null then [ ] else [ (toArg "mkRunArgs.closure" closure) ])
      ++ (
        if command == null then
          [ ]
        else if isList command then
          [ "--" ] ++ map (toArg "mkRunArgs.command") command
        else
          throw "nucleus: mkRunArgs.command must be a list (the program and its arguments)"
      );

  # ---------------------------------------------------------------------
  # validateRunArgs: the same rules `nucleus run` applies to its arguments
  # (src/policy.rs), where they can be checked without the host's files.
  # Returns a list of messages; [ ] means acceptable.

  namePattern = "[A-Za-z0-9][A-Za-z0-9_.-]{0,127}";
  hostLabelPattern = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
  sizePattern = "[0-9]+[KMGkmg]?";
  networks = [
    "none"
    "sandbox"
    "host"
  ];

  # Sandbox paths nucleus manages itself; mounts may not go there.
  forbiddenDestinations = [
    "/proc"
    "/sys"
    "/dev"
    "/nix"
    "/bin"
    "/sbin"
    "/lib"
    "/lib64"
    "/usr"
    "/etc"
    "/run/secrets"
  ];
  secretsDir = "/run/secrets";

  isAtOrUnder = prefix: p: p == prefix || hasPrefix "${prefix}/" p;

  pathComponents = p: filter (c: c != "" && c != ".") (splitOn "/" p);

  # "/a//./b/" -> "/a/b"
  normalisePath = p: "/" + concatStringsSep "/" (pathComponents p);

  absolutePathErrors =
    what: p:
    if !hasPrefix "/" p then
      [ "${what}: '${p}' is not an absolute path" ]
    else if elem ".." (pathComponents p) then
      [ "${what}: '${p}' contains '..'" ]
    else
      [ ];

  destinationErrors =
    what: p:
    let
      n = normalisePath p;
      bad = filter (f: isAtOrUnder f n) forbiddenDestinations;
    in
    if absolutePathErrors what p != [ ] then
      absolutePathErrors what p
    else if n == "/" then
      [ "${what}: the destination cannot be /" ]
    else if bad != [ ] then
      [ "${what}: destination '${n}' is under ${head bad}, which nucleus manages" ]
    else
      [ ];

  sizeErrors =
    what: s:
    if match sizePattern s == null then
      [ "${what}: '${s}' is not a size such as 512K, 64M or 2G" ]
    else if match "[0]+[KMGkmg]?" s != null then
      [ "${what}: '${s}' is zero" ]
    else
      [ ];

  # Values that are not strings are checked after the same coercion
  # mkRunArgs applies, so the checks see exactly what the CLI will see.
  coerced = field: v: toArg field v;

  scalarErrors =
    field: v: check:
    if v == null then
      [ ]
    else if isBool v || isList v || (isAttrs v && !isStringLike v) then
      [ "${field}: a ${typeOf v} is not a valid value" ]
    else
      check (coerced field v);

  # Host paths the CLI never shares (after resolving symlinks, which only
  # it can do; here the path as written is checked).
  forbiddenSources = [
    "/proc"
    "/sys"
    "/dev"
    "/boot"
    "/etc"
    "/root"
    "/run"
    "/var/run"
    "/nix"
  ];

  # Secrets are files handed over on purpose (agenix and sops-nix keep them
  # under /run): only the kernel's views and the store are refused.
  forbiddenSecretSources = [
    "/proc"
    "/sys"
    "/dev"
    "/nix"
  ];

  sourceErrors =
    forbidden: what: src:
    let
      n = normalisePath src;
      bad = filter (f: isAtOrUnder f n) forbidden;
    in
    if src == "" then
      [ "${what}: the source path is empty" ]
    else if !hasPrefix "/" src then
      # Relative to the caller's directory: only the CLI can resolve it.
      [ ]
    else if hasPrefix storeDir src || (bad != [ ] && head bad == "/nix") then
      [ "${what}: the source is in the Nix store, which the CLI never shares (and every user can read)" ]
    else if n == "/" then
      [ "${what}: the host's root directory cannot be shared" ]
    else if bad != [ ] then
      [ "${what}: the source '${n}' is under ${head bad}, which the CLI never shares" ]
    else
      [ ];

  volumeErrors =
    v:
    let
      what = "volumes: '${v}'";
      parts = splitOn ":" v;
      n = length parts;
    in
    if n < 2 || n > 3 then
      [ "${what}: expected SRC:DST[:ro|rw]" ]
    else if
      n == 3
      && !(elem (elemAt parts 2) [
        "ro"
        "rw"
      ])
    then
      [ "${what}: mode '${elemAt parts 2}' is neither ro nor rw" ]
    else
      sourceErrors forbiddenSources what (head parts) ++ destinationErrors what (elemAt parts 1);

  tmpfsErrors =
    t:
    let
      what = "tmpfs: '${t}'";
      p = splitFirst t;
    in
    if p == null then
      destinationErrors what t
    else
      destinationErrors what p.before ++ sizeErrors what p.after;

  secretErrors =
    s:
    let
      what = "secrets: '${s}'";
      p = splitFirst s;
    in
    if p == null then
      [ "${what}: expected SRC:DST" ]
    else
      sourceErrors forbiddenSecretSources what p.before
      ++ (
        if absolutePathErrors what p.after != [ ] then
          absolutePathErrors what p.after
        else if !hasPrefix "${secretsDir}/" (normalisePath p.after) then
          [ "${what}: the destination must be a file under ${secretsDir}/" ]
        else
          [ ]
      );

  listErrors =
    field: v: check:
    if v == null then
      [ ]
    else if !isList v then
      [ "${field}: expected a list of strings" ]
    else
      concatMap (
        x:
        if isString x || isStringLike x then
          check (coerced field x)
        else
          [ "${field}: a ${typeOf x} is not a string" ]
      ) v;

  envErrors =
    env:
    if env == null then
      [ ]
    else if !isAttrs env || isStringLike env then
      [ "environment: expected an attribute set of KEY = VALUE" ]
    else
      concatMap (
        k:
        let
          v = env.${k};
        in
        (if k == "" then [ "environment: a variable name is empty" ] else [ ])
        ++ (
          if match ".*=.*" k != null then
            [ "environment: '${k}': a variable name cannot contain '='" ]
          else
            [ ]
        )
        ++ (
          if isString v || isInt v || isFloat v || isStringLike v then
            [ ]
          else
            [ "environment: '${k}': a ${typeOf v} is not a valid value" ]
        )
      ) (attrNames env);

  cpusErrors =
    s:
    let
      m = match "([0-9]*)(\\.([0-9]*))?" s;
      whole = if m == null then "" else elemAt m 0;
      frac = if m == null || elemAt m 2 == null then "" else elemAt m 2;
      millis =
        (if whole == "" then 0 else parseDigits whole) * 1000 + parseDigits (substring 0 3 (frac + "000"));
    in
    if m == null || (whole == "" && frac == "") || stringLength frac > 3 then
      [ "cpus: '${s}' is not a number of CPUs such as 1, 2 or 0.5 (at most three decimals)" ]
    else if stringLength whole > 7 || millis == 0 || millis > 1000000 then
      [ "cpus: '${s}' must be above 0 and at most 1000" ]
    else
      [ ];

  validateRunArgs =
    args:
    let
      get = f: args.${f} or null;
      unknown = filter (n: !(elem n runArgFields)) (attrNames args);
      seccompProfile = get "seccompProfile";
      seccompSha = get "seccompProfileSha256";
    in
    (if unknown != [ ] then [ "unknown field(s): ${concatStringsSep ", " unknown}" ] else [ ])
    ++ scalarErrors "name" (get "name") (
      s:
      if match namePattern s == null then
        [
          "name: '${s}' must match ${namePattern} (1-128 of A-Z a-z 0-9 _ . -, starting with a letter or digit)"
        ]
      else
        [ ]
    )
    ++ scalarErrors "hostname" (get "hostname") (
      s:
      if stringLength s > 253 || !(all (l: match hostLabelPattern l != null) (splitOn "\\." s)) then
        [
          "hostname: '${s}' is not a valid host name (RFC 1123: letters, digits, inner '-', labels joined by '.')"
        ]
      else
        [ ]
    )
    ++ envErrors (get "environment")
    ++ listErrors "volumes" (get "volumes") volumeErrors
    ++ listErrors "tmpfs" (get "tmpfs") tmpfsErrors
    ++ listErrors "secrets" (get "secrets") secretErrors
    ++ scalarErrors "user" (get "user") (
      s:
      if match "[0-9]{1,10}(:[0-9]{1,10})?" s == null then
        [ "user: '${s}' must be a numeric UID[:GID]" ]
      else
        [ ]
    )
    ++ scalarErrors "workdir" (get "workdir") (absolutePathErrors "workdir")
    ++ scalarErrors "memory" (get "memory") (sizeErrors "memory")
    ++ scalarErrors "cpus" (get "cpus") cpusErrors
    ++ scalarErrors "pids" (get "pids") (
      s:
      if match "[0-9]{1,18}" s == null then
        [ "pids: '${s}' is not a whole number" ]
      else if parseDigits s < 50 then
        [
          "pids: ${s} is below 50: gVisor's own processes count against the limit and the sandbox could not boot"
        ]
      else
        [ ]
    )
    ++ scalarErrors "seccompProfileSha256" seccompSha (
      s:
      (
        if match "[0-9a-fA-F]{64}" s == null then
          [ "seccompProfileSha256: '${s}' is not 64 hex digits" ]
        else
          [ ]
      )
      ++ (
        if seccompProfile == null then [ "seccompProfileSha256 is set but seccompProfile is not" ] else [ ]
      )
    )
    ++ scalarErrors "network" (get "network") (
      s:
      if elem s networks then
        [ ]
      else
        [ "network: '${s}' must be one of ${concatStringsSep ", " networks}" ]
    )
    ++ scalarErrors "platform" (get "platform") (
      s:
      if match "[a-z0-9]{1,32}" s == null then
        [ "platform: '${s}' is not a runsc platform name (e.g. ptrace, kvm)" ]
      else
        [ ]
    )
    ++ scalarErrors "timeout" (get "timeout") (
      s:
      if match "[0-9]{1,18}" s == null || match "0+" s != null then
        [ "timeout: '${s}' must be a whole number of seconds above 0" ]
      else
        [ ]
    )
    ++ (
      let
        c = get "command";
      in
      if c == null || isList c then
        [ ]
      else
        [ "command: expected a list (the program and its arguments)" ]
    )
    ++ (
      let
        e = get "extraArgs";
      in
      if e == null || isList e then [ ] else [ "extraArgs: expected a list of strings" ]
    );

  # ---------------------------------------------------------------------
  # systemd quoting. ExecStart= is not a shell: systemd splits the line
  # into words itself, honours double quotes and C escapes inside them,
  # expands %-specifiers everywhere and $VAR / ${VAR} in every word. So
  # each argument is put in double quotes with \ and " backslash-escaped,
  # newline/CR/tab written as \n \r \t, every % doubled (a literal %) and
  # every $ doubled (a literal $). Nothing here is shell syntax: no single
  # quotes, no backslash before spaces.
  escapeSystemdExecArg =
    arg:
    let
      s = toArg "escapeSystemdExecArg" arg;
    in
    "\""
    +
      replaceStrings
        [
          "\\"
          "\""
          "\n"
          "\r"
          "\t"
          "%"
          "$"
        ]
        [
          "\\\\"
          "\\\""
          "\\n"
          "\\r"
          "\\t"
          "%%"
          "$$"
        ]
        s
    + "\"";

  escapeSystemdExecArgs = args: concatStringsSep " " (map escapeSystemdExecArg args);

  # ---------------------------------------------------------------------
  # The NixOS module's per-container logic, kept here so it can be tested
  # without nixpkgs.
  #
  # `container` is the container's option set (extra attributes such as
  # `enable` are ignored); `name` is its attribute name, which also names
  # the unit (nucleus-<name>.service) and its runtime directory
  # (/run/nucleus-<name>, nucleus's state root via NUCLEUS_STATE_ROOT).

  # The run arguments of one container: its mkRunArgs fields, with the
  # nucleus name defaulting to the attribute name.
  containerRunArgs =
    name: container:
    let
      fields = builtins.intersectAttrs runArgFieldSet container;
    in
    fields
    // {
      name = if (container.name or null) != null then container.name else name;
    };

  mkExecCommands =
    {
      package,
      name,
      container,
    }:
    let
      exe = "${toString package}/bin/nucleus";
      runArgs = containerRunArgs name container;
    in
    rec {
      unitName = "nucleus-${name}";
      runtimeDirectory = unitName;
      stateRoot = "/run/${runtimeDirectory}";
      containerName = runArgs.name;
      execStart = escapeSystemdExecArgs ([ exe ] ++ mkRunArgs runArgs);
      # "-": a container that is not there is not an error. Run before the
      # start so that a crashed run's state never blocks the restart, and
      # after the stop so that nothing of it is left behind.
      execStartPre =
        "-"
        + escapeSystemdExecArgs [
          exe
          "delete"
          "--force"
          containerName
        ];
      execStopPost = execStartPre;
    };

  mkExecStart = args: (mkExecCommands args).execStart;

  # Everything the module asserts for one enabled container: the CLI's own
  # rules plus what only makes sense for a service (absolute host paths:
  # a unit has no meaningful working directory; secrets that never pass
  # through the world-readable store; a command to run).
  validateContainer =
    { name, container }:
    let
      runArgs = containerRunArgs name container;
      cmd = container.command or null;
      absoluteSource =
        what: src:
        if hasPrefix "/" src then [ ] else [ "${what}: the source '${src}' must be an absolute host path" ];
      volumeSourceErrors = concatMap (v: absoluteSource "volumes: '${v}'" (head (splitOn ":" v))) (
        filter isString (container.volumes or [ ])
      );
      secretSourceErrors = concatMap (
        s:
        let
          p = splitFirst s;
        in
        (if p == null then [ ] else absoluteSource "secrets: '${s}'" p.before)
        ++ (
          if hasContext s then
            [
              "secrets: '${s}' refers to a store path (it was interpolated from a Nix path or package): give the host path as a plain string so the secret is never copied into the world-readable store"
            ]
          else
            [ ]
        )
      ) (filter isString (container.secrets or [ ]));
    in
    (
      if match namePattern name == null then
        [
          "the attribute name '${name}' must match ${namePattern}: it names the unit nucleus-${name}.service"
        ]
      else
        [ ]
    )
    ++ validateRunArgs runArgs
    ++ (
      if cmd == null || cmd == [ ] then [ "command: give the program to run (a non-empty list)" ] else [ ]
    )
    ++ volumeSourceErrors
    ++ secretSourceErrors;

  # ---------------------------------------------------------------------
  # Which option maps to which CLI flag, for tests and documentation.
  optionFlags = map (e: {
    inherit (e) option flag;
    long = e.long or e.flag;
  }) flagTable;

  # ---------------------------------------------------------------------
  # mkRootfs: a symlink tree of `packages` with the directories nucleus
  # shows at the sandbox's /bin /sbin /lib /lib64 /usr /etc, usable as
  # nucleus's INSTALLABLE. Every symlink in it points into the closure.
  # A small /etc (root and nobody in passwd/group, nsswitch.conf) is added
  # at low priority, so a package's own files win over it.
  mkRootfs =
    {
      pkgs,
      packages,
      name ? "nucleus-rootfs",
      baseEtc ? true,
    }:
    let
      etc = pkgs.runCommand "nucleus-base-etc" { meta.priority = 100; } ''
        mkdir -p $out/etc
        printf '%s\n' 'root:x:0:0:root:/:/bin/sh' 'nobody:x:65534:65534:nobody:/:/bin/false' > $out/etc/passwd
        printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' > $out/etc/group
        printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' > $out/etc/nsswitch.conf
      '';
    in
    pkgs.buildEnv {
      inherit name;
      paths = packages ++ (if baseEtc then [ etc ] else [ ]);
      pathsToLink = [
        "/bin"
        "/sbin"
        "/lib"
        "/lib64"
        "/usr"
        "/etc"
      ];
    };
in
{
  inherit
    mkRunArgs
    validateRunArgs
    escapeSystemdExecArg
    escapeSystemdExecArgs
    mkExecCommands
    mkExecStart
    containerRunArgs
    validateContainer
    optionFlags
    mkRootfs
    ;

  # Field names mkRunArgs accepts, and the constants the checks use.
  inherit
    runArgFields
    namePattern
    networks
    forbiddenSources
    forbiddenSecretSources
    forbiddenDestinations
    ;
  flagsByOption = listToAttrs (
    map (e: {
      name = e.option;
      value = e.flag;
    }) flagTable
  );
}
