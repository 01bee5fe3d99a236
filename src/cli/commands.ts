// The commands of podnet, as data: what `--help` shows (usage, description,
// flags, examples) and what completion offers are read from this table
// without loading any command's code (CommandSpec is declared in flags.ts,
// which completion.ts can import without a circle). Each command's module is imported
// only by its action, so `podnet --help` loads cac and this file, not the
// network stack or the native addon.
import {
  CLUSTER_FLAGS,
  type CommandSpec,
  NETNS_FLAGS,
  NETWORK_FLAGS,
  NETWORKS_FLAGS,
  STATS_FLAGS,
  UP_FLAGS,
} from './flags.js';

/** Every podnet command, in the order `--help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'up',
    args: '<id>',
    summary: "Set up a container's network: a namespace attached to CNI networks",
    description:
      'Creates a network namespace for container ID, attaches it to CNI networks (the default network unless --network is given) or to a rootless engine (--mode slirp4netns|pasta), publishes ports and records the state, so that later podnet processes find it by ID. The namespace stays mounted until `podnet down ID`.',
    flags: UP_FLAGS,
    examples: [
      '  $ podnet up web1                                  # default network, a new namespace',
      '  $ podnet up web1 --network podman -p 8080:80      # host port 8080 to the container port 80',
      '  $ podnet up web1 --mode slirp4netns -p 127.0.0.1:8080:80/tcp',
      '  $ podnet up web1 --pid 4242 --json               # the namespace of process 4242',
      '  $ podnet up web1 --network web --write-etc /run/ctr/web1   # resolv.conf and hosts to mount',
    ],
    run: async (args, flags) => (await import('./container.js')).up(args, flags),
  },
  {
    name: 'down',
    args: '<id>',
    summary: "Tear down a container's network (CNI DEL, namespace removed)",
    description:
      'Runs CNI DEL for every network of container ID (in reverse order), stops its rootless helpers, removes its published ports, unmounts and removes its namespace, and deletes its state.',
    flags: NETWORK_FLAGS,
    examples: ['  $ podnet down web1', '  $ podnet down web1 --state-dir /tmp/podnet-state --json'],
    run: async (args, flags) => (await import('./container.js')).down(args, flags),
  },
  {
    name: 'inspect',
    args: '<id>',
    summary: "A container's Docker-compatible NetworkSettings (JSON)",
    description:
      "Prints container ID's network settings as `docker inspect` shows them under NetworkSettings: addresses, gateways, MAC addresses, ports and networks. The output is always JSON.",
    flags: NETWORK_FLAGS,
    examples: [
      '  $ podnet inspect web1',
      "  $ podnet inspect web1 | jq -r .IPAddress           # the container's IPv4 address",
    ],
    run: async (args, flags) => (await import('./container.js')).inspect(args, flags),
  },
  {
    name: 'gc',
    args: '',
    summary: 'Remove what dead containers left: state, mounts, CNI attachments, helpers',
    description:
      'Undoes setups that crashed and tears down containers whose namespace (or its helper) is gone, under each container\'s lock; a setup still running is left alone. Anything it could not decide is kept and listed under "could not clean".',
    flags: NETWORK_FLAGS,
    examples: ['  $ podnet gc', '  $ podnet gc --json'],
    run: async (args, flags) => (await import('./container.js')).gc(args, flags),
  },
  {
    name: 'stats',
    args: '[...ids]',
    summary: 'Per-interface counters of containers (all without IDs)',
    description:
      'Prints the counters of every interface of the containers given, or of every ready container without IDs. With --watch it redraws until interrupted (SIGINT or SIGTERM, exit 0): the first frame at once with counters, then rates per second against the previous frame. Traffic through published ports is shown where it is counted: lo is listed (marked loopback) when it carries it (the podnet port forwarder, the pasta splice), and the per-port counters of the forwarder (connections, bytes each way, datagrams) follow the interfaces. --format openmetrics prints the counters as OpenMetrics text under the names cAdvisor uses (container_network_receive_bytes_total{id,name,interface}, ...). IDs are shortened to 12 characters in tables, never in JSON. A state file that does not load is skipped with a warning (an error with --strict).',
    flags: STATS_FLAGS,
    examples: [
      '  $ podnet stats                                    # every container, once',
      '  $ podnet stats web1 db1 --json',
      '  $ podnet stats --watch --interval 0.5             # rates twice a second',
      '  $ podnet stats --watch --json | jq .containers    # one JSON line per frame',
      '  $ podnet stats --format openmetrics               # for a textfile collector',
    ],
    run: async (args, flags) => (await import('./stats.js')).stats(args, flags),
  },
  {
    name: 'network',
    aliases: ['networks'],
    args: '[action] [...names]',
    summary:
      'Networks as objects, like podman network: create | ls (default) | inspect | rm | prune | exists | connect | disconnect | reload',
    description:
      "Networks stored as podman 4's CNI backend stores them, one NAME.conflist in the CNI configuration directory that every command reads: create NAME writes one (bridge + portmap + firewall + tuning, dnsname unless --disable-dns; macvlan or ipvlan with -o parent=IF), refusing a name, subnet or option podman would refuse; ls lists them (and the default network) with podman's fields; inspect NAME... prints podman's JSON with the containers attached; rm NAME... removes a network and its bridge, refused while containers use it unless --force tears them down; prune removes every network no container uses; exists NAME exits 0 or 1; connect NET ID adds the next interface (eth1, ...) to a running container (--ip, --ip6, --mac, --alias), disconnect NET ID removes it, the others untouched; reload ID...|--all attaches every network of a container again with the same interfaces, addresses and MACs, after something flushed the firewall. `networks` is the same command.",
    flags: NETWORKS_FLAGS,
    actions: [
      'create',
      'ls',
      'inspect',
      'rm',
      'prune',
      'exists',
      'connect',
      'disconnect',
      'reload',
    ],
    examples: [
      '  $ podnet network create web                      # a free 10.89.N.0/24, DNS on',
      '  $ podnet network create db --subnet 10.99.0.0/24 --gateway 10.99.0.254 -o isolate=true',
      '  $ podnet network create v6 --ipv6 --label env=dev',
      '  $ podnet network ls --filter label=env=dev --json',
      '  $ podnet network inspect web | jq -r ".[0].subnets[0].subnet"',
      '  $ podnet network rm web --force                  # tears down its containers first',
      '  $ podnet network connect web web1 --ip 10.89.0.20 --alias api',
      '  $ podnet network disconnect web web1',
      '  $ podnet network reload --all                    # after a firewall flush',
    ],
    run: async (args, flags) => (await import('./network.js')).network(args, flags),
  },
  {
    name: 'exec',
    args: '<id>',
    summary: "Run a command in a container's network namespace: exec ID -- CMD [ARG...]",
    description:
      "Runs CMD with its arguments (no shell) inside container ID's network namespace (and, for an unprivileged user's rootless container, its user namespace), with podnet's stdin, stdout and stderr. podnet exits with the command's status: 128+N when signal N ended it, 126 when it could not be run, 127 when it was not found, 125 when podnet itself failed (no such container, say). SIGTERM, SIGHUP and SIGQUIT sent to podnet are passed on to the command.",
    flags: NETWORK_FLAGS,
    examples: [
      "  $ podnet exec web1 -- ip -brief addr               # the container's interfaces",
      '  $ podnet exec web1 -- curl -s http://127.0.0.1:80/  # its own loopback',
    ],
    run: async (args, flags) => (await import('./exec.js')).exec(args, flags),
    failureStatus: () => 125,
  },
  {
    name: 'netns',
    args: '<action> [name]',
    summary: 'Network namespaces: add [NAME] | ls | rm NAME | exec NAME -- CMD [ARG...]',
    description:
      'Named network namespaces, like `ip netns`: add mounts a new one (a generated name without NAME), ls lists them, rm unmounts and removes one, exec runs a command inside one (no shell; podnet exits with its status, as for `podnet exec`: 126 cannot run, 127 not found, 125 podnet failed). They live in /run/netns unless --dir (or --netns-dir) says otherwise.',
    flags: NETNS_FLAGS,
    actions: ['add', 'ls', 'rm', 'exec'],
    examples: [
      '  $ podnet netns add blue',
      '  $ podnet netns ls --dir /tmp/my-netns --json',
      '  $ podnet netns exec blue -- ip link set lo up',
      '  $ podnet netns rm blue',
    ],
    run: async (args, flags) => (await import('./netns.js')).netns(args, flags),
    failureStatus: (args) => (args[0] === 'exec' ? 125 : undefined),
  },
  {
    name: 'cluster',
    args: '[action] [...names]',
    summary:
      'A cluster on this machine: up [NAME] | down NAME...|--all | ls (default) | partition NAME GROUP... | heal NAME',
    description:
      "Nodes as network namespaces on an underlay bridge, each with its own CNI configuration, cache and lease directories, and pods set up on them by the unchanged CNI plugins (Debian's bridge + host-local, or flannel's plugin where installed) running inside the node's namespace. Pods on different nodes reach each other by pod IP, through routes (--backend host-gw) or flannel's VXLAN shape (--backend vxlan). up builds one and prints its nodes and pods (namespaces to run commands in with `podnet netns exec`); it stays until down. ls lists the clusters, including those a test suite's createCluster made, with their partition. partition NAME node1 node2,node3 cuts the groups of nodes (comma-separated, the rest one more group) from each other in one transaction at the switch, and prints the groups the kernel now has; heal NAME ends it. Needs root and the CNI plugins.",
    flags: CLUSTER_FLAGS,
    actions: ['up', 'down', 'ls', 'partition', 'heal'],
    examples: [
      '  $ podnet cluster up lab --nodes 3 --pods 2 --backend vxlan',
      '  $ podnet cluster ls --json',
      '  $ podnet netns exec podnet-test-0123456789ab -- ip -brief addr   # a pod of the table',
      '  $ podnet cluster partition lab node1 node2,node3    # node1 cut from the others',
      '  $ podnet cluster heal lab',
      '  $ podnet cluster down lab',
    ],
    run: async (args, flags) => (await import('./cluster.js')).cluster(args, flags),
  },
  {
    name: 'demo',
    args: '',
    summary:
      'A container network on the embedded default network: HTTP through a published port, inspect, live stats, teardown',
    description:
      'Sets up a container on the embedded default network, serves HTTP inside it, fetches it through a port published on 127.0.0.1, shows inspect and live stats, then tears everything down and checks that nothing was left behind. Needs root and the CNI plugins.',
    flags: [],
    examples: ['  $ sudo podnet demo', '  $ sudo podnet demo --json'],
    run: async (args, flags) => (await import('./demo.js')).demo(args, flags),
  },
  {
    name: 'completion',
    args: '<shell>',
    summary: 'Print a shell completion script: bash | zsh',
    description:
      'Prints a script that completes podnet commands, sub-actions and flags. Source it from your shell startup file.',
    flags: [],
    actions: ['bash', 'zsh'],
    examples: [
      "  $ echo 'source <(podnet completion bash)' >> ~/.bashrc",
      '  $ podnet completion zsh > ~/.zfunc/_podnet         # a directory in $fpath',
    ],
    run: async (args) => (await import('./completion.js')).completion(args, COMMANDS),
  },
];

/** How the exit status reads, for `--help` and the README. */
export const EXIT_STATUS_HELP = [
  '  0  success',
  '  1  the operation failed (the error line names its code)',
  '  2  usage error: unknown command or flag, bad flag value, missing argument; nothing was done',
  "  exec and netns exec: the command's own status (128+N when signal N ended it); 125 podnet",
  '  failed (usage errors too), 126 the command could not be run, 127 it was not found',
].join('\n');
