import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { ErrorType, PolyglotError } from './errors';
import type { RunnerKind } from './job-template';

/**
 * The worker's trust policy: what a sweep spec may make the worker send where. A spec is untrusted
 * input (anyone who can start a workflow writes one, from the Web UI too), so everything that names a
 * secret (an environment variable, a Kubernetes Secret), a host or a bucket is checked against
 * allow-lists the operator sets in the worker's environment, never in the spec. Enforced where the
 * secret is used (provider clients, job launch) and, for an early and complete report, at the start of
 * a sweep (`checkSpecPolicy`). Messages name fields, variables and hosts, never a secret's value.
 *
 * Operator settings (comma-separated):
 *   POLYGLOT_ALLOWED_KEY_ENVS       extra provider key variables; `NAME@host[:port]` binds one to hosts
 *                                   (default: only POLYGLOT_PROVIDER_KEY_*)
 *   POLYGLOT_ALLOWED_HOSTS          provider/endpoint hosts: `host`, `host:port`, `*.domain`, `*`, IP
 *                                   literals, `http://host[:port]` to allow plain http to a non-loopback host
 *                                   (default: localhost,127.0.0.1,[::1] — a dev worker)
 *   POLYGLOT_ALLOWED_SECRETS        Kubernetes Secrets jobs may reference: `secret/key=VAR` binds one key to
 *                                   one job variable; a bare `secret` allows envFromSecrets and each key only
 *                                   under its own name or a non-credential allowed job variable
 *                                   (default: polyglot-s3's two keys → AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
 *   POLYGLOT_LOCAL_SECRETS          local runner: `secretName/key=WORKER_VAR` (default: polyglot-s3's two
 *                                   keys → AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, which local jobs get anyway)
 *   POLYGLOT_ALLOWED_JOB_COMMANDS   job commands, words separated by spaces, `*` = any
 *                                   (default: polyglot-train,polyglot-eval)
 *   POLYGLOT_ALLOWED_IMAGES         Kubernetes job image prefixes (default: any)
 *   POLYGLOT_ALLOWED_BUCKETS        buckets a spec may name, `prefix*` allowed (default: any)
 *   POLYGLOT_ALLOWED_JOB_ENV        job `env` names besides the defaults (DEFAULT_JOB_ENV), `PREFIX_*` allowed;
 *                                   names that change what code runs stay refused
 *   POLYGLOT_ALLOWED_POD_KEYS       pod annotation, nodeSelector and toleration keys a job spec may set,
 *                                   `prefix*` allowed (default: none; the GPU ones the runner adds itself)
 *   POLYGLOT_ALLOWED_LOCAL_PATHS    path prefixes on the job's machine a model or data reference may name
 *                                   (default: none — the CLI imports local files into S3)
 */

export const PROVIDER_KEY_PREFIX = 'POLYGLOT_PROVIDER_KEY_';
const DEFAULT_HOSTS = 'localhost,127.0.0.1,[::1]';
const DEFAULT_SECRETS =
  'polyglot-s3/access-key-id=AWS_ACCESS_KEY_ID,polyglot-s3/secret-access-key=AWS_SECRET_ACCESS_KEY';
const DEFAULT_LOCAL_SECRETS =
  'polyglot-s3/access-key-id=AWS_ACCESS_KEY_ID,polyglot-s3/secret-access-key=AWS_SECRET_ACCESS_KEY';
const DEFAULT_COMMANDS = 'polyglot-train,polyglot-eval';

/** The settings above, by name: docs/security.md and the CLI's "this machine's policy" note list them. */
export const POLICY_ENV = [
  'POLYGLOT_ALLOWED_KEY_ENVS',
  'POLYGLOT_ALLOWED_HOSTS',
  'POLYGLOT_ALLOWED_SECRETS',
  'POLYGLOT_LOCAL_SECRETS',
  'POLYGLOT_ALLOWED_JOB_COMMANDS',
  'POLYGLOT_ALLOWED_IMAGES',
  'POLYGLOT_ALLOWED_BUCKETS',
  'POLYGLOT_ALLOWED_JOB_ENV',
  'POLYGLOT_ALLOWED_POD_KEYS',
  'POLYGLOT_ALLOWED_LOCAL_PATHS',
] as const;

/**
 * Variables that are the worker's own credentials or settings: never a provider key, even if listed.
 * (An operator who lists AWS_SECRET_ACCESS_KEY by mistake must not hand S3 to every spec author.)
 */
const RESERVED_KEY_ENV = /^(AWS_|TEMPORAL_|KUBE|S3_|POLYGLOT_(?!PROVIDER_KEY_))/;

/** Names that only a cloud's instance metadata service answers to. */
const METADATA_NAMES = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'metadata.azure.internal',
  'instance-data',
  'instance-data.ec2.internal',
  'metadata.tencentyun.com',
  'metadata.packet.net',
]);

/**
 * Job env names that change what code runs, whom a job trusts or which credentials it uses: never taken
 * from a spec, even if the operator lists them (interpreter and loader hooks, `PYTHONWARNINGS` imports a
 * module, `BROWSER`/`EDITOR`/`PAGER` are run as commands, proxies and CA bundles redirect trust).
 */
const FORBIDDEN_JOB_ENV =
  /^(PATH|HOME|LD_.*|DYLD_.*|PYTHON.*|NODE_.*|BASH_ENV|ENV|SHELLOPTS|BASHOPTS|PS4|PROMPT_COMMAND|PERL5.*|RUBY.*|BROWSER|EDITOR|VISUAL|PAGER|GIT_.*|SSL_.*|OPENSSL_.*|.*_CA_BUNDLE|.*_PROXY|AWS_.*|POLYGLOT_.*)$/i;
/** Variables whose value is a credential: from a Secret bound to that name only, never a spec's plain `env`. */
const CREDENTIAL_JOB_ENV =
  /^(AWS_.*|GOOGLE_.*|AZURE_.*|HF_TOKEN|HUGGING_FACE_HUB_TOKEN|.*(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|ACCESS_KEY|PRIVATE_KEY).*)$/i;
/**
 * Job env names a spec may set by default: what the project's jobs and their libraries read (offline
 * switches, S3 and HF endpoints — checked as URLs —, thread and GPU settings). Anything else needs the
 * operator's POLYGLOT_ALLOWED_JOB_ENV.
 */
export const DEFAULT_JOB_ENV = [
  'HF_HUB_OFFLINE',
  'HF_DATASETS_OFFLINE',
  'TRANSFORMERS_OFFLINE',
  'HF_ENDPOINT',
  'HF_HUB_DISABLE_TELEMETRY',
  'HF_HUB_DISABLE_PROGRESS_BARS',
  'TRANSFORMERS_VERBOSITY',
  'S3_ENDPOINT',
  'AWS_ENDPOINT_URL',
  'AWS_ENDPOINT_URL_S3',
  'AWS_REGION',
  'TOKENIZERS_PARALLELISM',
  'OMP_NUM_THREADS',
  'MKL_NUM_THREADS',
  'CUDA_VISIBLE_DEVICES',
  'PYTORCH_CUDA_ALLOC_CONF',
  'NCCL_DEBUG',
];
/** Of the forbidden names, the ones that are plain settings the defaults allow (not code, not trust). */
const DEFAULT_JOB_ENV_EXCEPTIONS = new Set(['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_REGION']);
/** Job env names whose value is an endpoint the job sends credentials to: checked as URLs. */
const ENDPOINT_JOB_ENV = /^(S3_ENDPOINT|AWS_ENDPOINT_URL(_S3)?|HF_ENDPOINT)$/;

interface HostEntry {
  raw: string;
  /** Lowercase name or IP (IPv6 without brackets); for a wildcard, the suffix after `*` (`.example.com`), or '' for `*`. */
  host: string;
  wildcard: boolean;
  port?: number;
  /** `http://` given: plain http allowed to this host. */
  http: boolean;
}

export interface TrustPolicy {
  keyEnvs: Map<string, HostEntry[]>;
  hosts: HostEntry[];
  /** Bare Secret names: envFromSecrets, and keys under their own or a non-credential name. */
  secrets: Set<string>;
  /** `secret/key` → the job variables the operator bound it to. */
  secretBindings: Map<string, Set<string>>;
  localSecrets: Map<string, string>;
  /** Job env names (exact) and prefixes (`PREFIX_*` given as `PREFIX_`) a spec may set. */
  jobEnv: { names: Set<string>; prefixes: string[] };
  /** Pod annotation / nodeSelector / toleration keys allowed (exact, or `prefix*`); undefined = any (`*`). */
  podKeys?: string[];
  /** Local path prefixes a model or data reference may name (normalized, ending in `/`). */
  localPaths: string[];
  /** undefined = any command. */
  commands?: string[][];
  images?: string[];
  buckets?: string[];
  /** The worker's own S3 endpoint host: jobs may always be pointed at it. */
  s3EndpointHost?: string;
  /** Which settings came from the environment (the CLI enforces its policy only when some did). */
  configured: string[];
}

export class PolicyConfigError extends Error {}

const list = (v: string | undefined, dflt: string): string[] =>
  (v ?? dflt)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function parseHostEntry(raw: string, setting: string): HostEntry {
  let rest = raw.trim();
  let http = false;
  const scheme = /^(https?):\/\//i.exec(rest);
  if (scheme) {
    http = scheme[1]!.toLowerCase() === 'http';
    rest = rest.slice(scheme[0].length);
  }
  rest = rest.replace(/\/+$/, '');
  let host: string;
  let port: number | undefined;
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(rest);
  const named = /^([^:/[\]]+)(?::(\d+))?$/.exec(rest);
  if (v6) [host, port] = [v6[1]!, v6[2] ? Number(v6[2]) : undefined];
  else if (named) [host, port] = [named[1]!, named[2] ? Number(named[2]) : undefined];
  else throw new PolicyConfigError(`${setting}: "${raw}" is not a host, host:port, *.domain or [IPv6]`);
  host = host.toLowerCase().replace(/\.$/, '');
  if (port !== undefined && (port < 1 || port > 65535)) throw new PolicyConfigError(`${setting}: bad port in "${raw}"`);
  if (host === '*') return { raw, host: '', wildcard: true, port, http };
  if (host.startsWith('*.')) return { raw, host: host.slice(1), wildcard: true, port, http };
  if (host.includes('*')) throw new PolicyConfigError(`${setting}: "${raw}": a wildcard only as "*" or "*.domain"`);
  return { raw, host: canonicalIp(host) ?? host, wildcard: false, port, http };
}

/** Read the policy from the worker's (or CLI's) environment; throws PolicyConfigError on a malformed setting. */
export function readTrustPolicy(env: NodeJS.ProcessEnv = process.env): TrustPolicy {
  const keyEnvs = new Map<string, HostEntry[]>();
  for (const item of list(env.POLYGLOT_ALLOWED_KEY_ENVS, '')) {
    const [name, host] = item.split('@', 2) as [string, string | undefined];
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      throw new PolicyConfigError(`POLYGLOT_ALLOWED_KEY_ENVS: "${item}" is not NAME or NAME@host`);
    const bound = keyEnvs.get(name) ?? [];
    if (host) bound.push(parseHostEntry(host, 'POLYGLOT_ALLOWED_KEY_ENVS'));
    keyEnvs.set(name, bound);
  }
  const localSecrets = new Map<string, string>();
  for (const item of list(env.POLYGLOT_LOCAL_SECRETS, DEFAULT_LOCAL_SECRETS)) {
    const m = /^([^/=\s]+)\/([^=\s]+)=([A-Za-z_][A-Za-z0-9_]*)$/.exec(item);
    if (!m) throw new PolicyConfigError(`POLYGLOT_LOCAL_SECRETS: "${item}" is not secretName/key=WORKER_VARIABLE`);
    localSecrets.set(`${m[1]}/${m[2]}`, m[3]!);
  }
  const secrets = new Set<string>();
  const secretBindings = new Map<string, Set<string>>();
  for (const item of list(env.POLYGLOT_ALLOWED_SECRETS, DEFAULT_SECRETS)) {
    const bound = /^([^/=\s]+)\/([^=\s]+)=([A-Za-z_][A-Za-z0-9_]*)$/.exec(item);
    if (bound) {
      const k = `${bound[1]}/${bound[2]}`;
      secretBindings.set(k, (secretBindings.get(k) ?? new Set()).add(bound[3]!));
    } else if (/^[^/=\s]+$/.test(item)) secrets.add(item);
    else
      throw new PolicyConfigError(`POLYGLOT_ALLOWED_SECRETS: "${item}" is not secretName or secretName/key=VARIABLE`);
  }
  const jobEnv = { names: new Set(DEFAULT_JOB_ENV), prefixes: [] as string[] };
  for (const item of list(env.POLYGLOT_ALLOWED_JOB_ENV, '')) {
    if (/^[A-Za-z_][A-Za-z0-9_]*\*$/.test(item)) jobEnv.prefixes.push(item.slice(0, -1));
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(item)) jobEnv.names.add(item);
    else throw new PolicyConfigError(`POLYGLOT_ALLOWED_JOB_ENV: "${item}" is not NAME or PREFIX_*`);
  }
  const podKeys = list(env.POLYGLOT_ALLOWED_POD_KEYS, '');
  const localPaths = list(env.POLYGLOT_ALLOWED_LOCAL_PATHS, '').map((p) => {
    if (!p.startsWith('/')) throw new PolicyConfigError(`POLYGLOT_ALLOWED_LOCAL_PATHS: "${p}" is not an absolute path`);
    return posix.normalize(`${p}/`);
  });
  const commands = list(env.POLYGLOT_ALLOWED_JOB_COMMANDS, DEFAULT_COMMANDS);
  const images = list(env.POLYGLOT_ALLOWED_IMAGES, '');
  const buckets = list(env.POLYGLOT_ALLOWED_BUCKETS, '');
  let s3EndpointHost: string | undefined;
  try {
    s3EndpointHost = env.S3_ENDPOINT ? new URL(env.S3_ENDPOINT).host.toLowerCase() : undefined;
  } catch {
    s3EndpointHost = undefined;
  }
  return {
    keyEnvs,
    hosts: list(env.POLYGLOT_ALLOWED_HOSTS, DEFAULT_HOSTS).map((h) => parseHostEntry(h, 'POLYGLOT_ALLOWED_HOSTS')),
    secrets,
    secretBindings,
    localSecrets,
    jobEnv,
    podKeys: podKeys.includes('*') ? undefined : podKeys,
    localPaths,
    commands: commands.includes('*') ? undefined : commands.map((c) => c.split(/\s+/)),
    images: images.length ? images : undefined,
    buckets: buckets.length ? buckets : undefined,
    s3EndpointHost,
    configured: POLICY_ENV.filter((k) => env[k] !== undefined),
  };
}

/** A spec that breaks the worker's policy: every problem at once, each naming its field and the fix. */
export class PolicyViolationError extends PolyglotError {
  constructor(readonly problems: string[]) {
    super(ErrorType.PolicyViolation, `refused by the worker's trust policy:\n  ${problems.join('\n  ')}`);
  }
}

// ---- IP addresses ---------------------------------------------------------------------------------

type AddressKind = 'public' | 'loopback' | 'private' | 'blocked';
interface Classified {
  kind: AddressKind;
  why?: string;
}

function v4ToInt(ip: string): number {
  return ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}
const inV4 = (n: number, base: string, bits: number) =>
  bits === 0 || Math.floor(n / 2 ** (32 - bits)) === Math.floor(v4ToInt(base) / 2 ** (32 - bits));

function classifyV4(ip: string): Classified {
  const n = v4ToInt(ip);
  if (inV4(n, '169.254.0.0', 16)) return { kind: 'blocked', why: 'a link-local address (cloud metadata lives there)' };
  if (n === v4ToInt('100.100.100.200')) return { kind: 'blocked', why: 'a cloud metadata address' };
  if (inV4(n, '0.0.0.0', 8)) return { kind: 'blocked', why: "an unspecified address ('this host')" };
  if (inV4(n, '224.0.0.0', 4)) return { kind: 'blocked', why: 'a multicast address' };
  if (inV4(n, '240.0.0.0', 4)) return { kind: 'blocked', why: 'a reserved or broadcast address' };
  if (inV4(n, '127.0.0.0', 8)) return { kind: 'loopback' };
  for (const [base, bits] of [
    ['10.0.0.0', 8],
    ['172.16.0.0', 12],
    ['192.168.0.0', 16],
    ['100.64.0.0', 10],
    ['198.18.0.0', 15],
    ['192.0.0.0', 24],
  ] as const) {
    if (inV4(n, base, bits)) return { kind: 'private' };
  }
  return { kind: 'public' };
}

/** The eight 16-bit groups of an IPv6 address (embedded dotted IPv4 allowed), or undefined. */
function v6Groups(ip: string): number[] | undefined {
  let s = ip.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const n = v4ToInt(dotted[1]!);
    s = `${s.slice(0, -dotted[1]!.length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string) => (h ? h.split(':').map((g) => parseInt(g, 16)) : []);
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const groups = [...head, ...Array<number>(fill).fill(0), ...tail];
  return groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff) ? undefined : groups;
}

const v4FromGroups = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

function classifyV6(ip: string): Classified {
  const g = v6Groups(ip);
  if (!g) return { kind: 'blocked', why: 'an unparseable IPv6 address' };
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 8)) return { kind: 'blocked', why: "the unspecified address ('this host')" };
  if (zeros(0, 7) && g[7] === 1) return { kind: 'loopback' };
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) reach the
  // IPv4 address inside: judge that one.
  if ((zeros(0, 5) && g[5] === 0xffff) || zeros(0, 6) || (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6))) {
    const inner = classifyV4(v4FromGroups(g[6]!, g[7]!));
    return inner.why ? { ...inner, why: `${inner.why}, IPv4 inside an IPv6 address` } : inner;
  }
  if (g[0] === 0x2002) {
    const inner = classifyV4(v4FromGroups(g[1]!, g[2]!));
    if (inner.kind !== 'public') return { kind: inner.kind === 'blocked' ? 'blocked' : 'private', why: inner.why };
  }
  if ((g[0]! & 0xffc0) === 0xfe80) return { kind: 'blocked', why: 'a link-local IPv6 address (fe80::/10)' };
  if (g[0] === 0xfd00 && g[1] === 0x0ec2 && zeros(2, 7) && g[7] === 0x254)
    return { kind: 'blocked', why: 'the AWS IPv6 metadata address' };
  if ((g[0]! & 0xff00) === 0xff00) return { kind: 'blocked', why: 'a multicast IPv6 address' };
  if ((g[0]! & 0xfe00) === 0xfc00 || (g[0]! & 0xffc0) === 0xfec0) return { kind: 'private' };
  return { kind: 'public' };
}

export function classifyAddress(ip: string): Classified {
  const v = isIP(ip);
  if (v === 4) return classifyV4(ip);
  if (v === 6) return classifyV6(ip);
  return { kind: 'blocked', why: 'not an IP address' };
}

/** One spelling per address, so `::1`, `0:0::1` and `[::1]` compare equal. */
function canonicalIp(host: string): string | undefined {
  const h = host.replace(/^\[|\]$/g, '');
  if (isIP(h) === 4) return h;
  if (isIP(h) === 6)
    return v6Groups(h)
      ?.map((x) => x.toString(16))
      .join(':');
  return undefined;
}

// ---- hosts and URLs -------------------------------------------------------------------------------

interface Target {
  url: URL;
  /** Lowercase, no brackets, no trailing dot; canonical when an IP. */
  host: string;
  ip: boolean;
  port: number;
}

function target(raw: string): Target | string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `uses ${url.protocol}; only http(s) is allowed`;
  if (url.username || url.password)
    return 'carries a user name or password; give the key by apiKeyEnv, never in the URL';
  const bare = url.hostname
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  const ip = canonicalIp(bare);
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { url, host: ip ?? bare, ip: ip !== undefined, port };
}

const portOk = (e: HostEntry, t: Target) => e.port === undefined || e.port === t.port;
const exactMatch = (e: HostEntry, t: Target) => !e.wildcard && e.host === t.host && portOk(e, t);
/** An entry allows the target: exact host, `*.domain` (names only), or `*` (anything; private addresses are filtered later). */
function anyMatch(e: HostEntry, t: Target): boolean {
  if (!portOk(e, t)) return false;
  if (!e.wildcard) return e.host === t.host;
  return e.host === '' || (!t.ip && t.host.endsWith(e.host));
}
const isLoopbackName = (t: Target) => t.host === 'localhost' || (t.ip && classifyAddress(t.host).kind === 'loopback');

const HOW_TO_ALLOW = 'the worker operator allows hosts with POLYGLOT_ALLOWED_HOSTS';

/** The checks that need no DNS: scheme, allow-list, metadata names, dangerous IP literals. */
export function checkUrl(policy: TrustPolicy, raw: string, field: string): string[] {
  const t = target(raw);
  if (typeof t === 'string') return [`${field}: ${t}`];
  const shown = `${t.url.protocol}//${t.url.host}`;
  const explicit = policy.hosts.filter((e) => exactMatch(e, t));
  if (METADATA_NAMES.has(t.host) && !explicit.length)
    return [`${field}: ${shown} is a cloud metadata service; refused (${HOW_TO_ALLOW}, by its exact name)`];
  if (t.ip) {
    const c = classifyAddress(t.host);
    if (c.kind === 'blocked' && !explicit.length)
      return [`${field}: ${shown} is ${c.why}; refused (${HOW_TO_ALLOW}, by the exact address)`];
  }
  const matched = policy.hosts.filter((e) => anyMatch(e, t));
  if (!matched.length) {
    return [
      `${field}: host ${t.url.host} is not allowed by this worker (allowed: ${policy.hosts.map((e) => e.raw).join(', ')}); ${HOW_TO_ALLOW}`,
    ];
  }
  if (t.ip && !explicit.length && classifyAddress(t.host).kind !== 'public') {
    return [
      `${field}: ${shown} is a ${classifyAddress(t.host).kind} address that only a wildcard allows; ${HOW_TO_ALLOW}, naming it`,
    ];
  }
  if (t.url.protocol === 'http:' && !isLoopbackName(t) && !matched.some((e) => e.http)) {
    return [
      `${field}: plain http to ${t.url.host} is refused (keys and data would travel unencrypted); use https, or the operator allows it as http://${t.url.host} in POLYGLOT_ALLOWED_HOSTS`,
    ];
  }
  return [];
}

export type Lookup = (host: string) => Promise<string[]>;
export const systemLookup: Lookup = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

/**
 * The addresses a host name resolves to must be allowed too: a name the allow-list admits (by a
 * wildcard above all) must not lead to a metadata, link-local or, via a wildcard, private address.
 * A name that does not resolve is no violation here (the request fails on its own, retryably).
 */
export async function checkResolved(
  policy: TrustPolicy,
  raw: string,
  field: string,
  lookup: Lookup = systemLookup,
): Promise<string[]> {
  const t = target(raw);
  if (typeof t === 'string' || t.ip) return [];
  let addresses: string[];
  try {
    addresses = await lookup(t.host);
  } catch {
    return [];
  }
  const explicitName = policy.hosts.some((e) => exactMatch(e, t));
  const problems: string[] = [];
  for (const a of addresses) {
    const c = classifyAddress(a);
    const ipExplicit = policy.hosts.some((e) => !e.wildcard && e.host === canonicalIp(a));
    if (c.kind === 'blocked' && !ipExplicit)
      problems.push(`${field}: ${t.host} resolves to ${a}, ${c.why}; refused (${HOW_TO_ALLOW}, by the exact address)`);
    else if ((c.kind === 'private' || c.kind === 'loopback') && !explicitName && !ipExplicit)
      problems.push(
        `${field}: ${t.host} resolves to ${c.kind} address ${a}, which a wildcard does not allow; ${HOW_TO_ALLOW}, naming ${t.host}`,
      );
  }
  return problems;
}

/** The provider's key variable: allowed by name, and (when the operator bound it) only to its hosts. */
export function checkKeyEnv(policy: TrustPolicy, name: string | undefined, baseUrl: string, field: string): string[] {
  if (!name) return [];
  if (RESERVED_KEY_ENV.test(name))
    return [
      `${field}: ${name} is one of the worker's own credentials or settings and is never sent to a provider; put the provider's key in a variable named ${PROVIDER_KEY_PREFIX}<NAME> on the worker`,
    ];
  const bound = policy.keyEnvs.get(name);
  if (!name.startsWith(PROVIDER_KEY_PREFIX) && !bound) {
    return [
      `${field}: ${name} is not an allowed provider key variable on this worker; use a variable named ${PROVIDER_KEY_PREFIX}<NAME>, or the worker operator lists it in POLYGLOT_ALLOWED_KEY_ENVS`,
    ];
  }
  if (bound?.length) {
    const t = target(baseUrl);
    if (typeof t !== 'string' && !bound.some((e) => anyMatch(e, t)))
      return [
        `${field}: ${name} may only be sent to ${bound.map((e) => e.raw).join(', ')} (POLYGLOT_ALLOWED_KEY_ENVS), not to ${t.url.host}`,
      ];
  }
  return [];
}

export function checkProvider(
  policy: TrustPolicy,
  p: { baseUrl: string; apiKeyEnv?: string },
  field: string,
): string[] {
  return [
    ...checkUrl(policy, p.baseUrl, `${field}.baseUrl`),
    ...checkKeyEnv(policy, p.apiKeyEnv, p.baseUrl, `${field}.apiKeyEnv`),
  ];
}

// ---- buckets and jobs -----------------------------------------------------------------------------

/** An allow-list entry: the exact value, or `prefix*` for every value that starts with the prefix. */
const allows = (entries: readonly string[], value: string): boolean =>
  entries.some((e) => (e.endsWith('*') ? value.startsWith(e.slice(0, -1)) : e === value));

export function checkBucketUri(policy: TrustPolicy, uri: string | undefined, field: string): string[] {
  if (!policy.buckets || !uri) return [];
  const m = /^(?:random:)?s3:\/\/([^/]+)/.exec(uri);
  const bucket = m ? m[1]! : /^s3:/.test(uri) ? uri : undefined;
  if (bucket === undefined) return [];
  return checkBucket(policy, bucket, field);
}

/** A bucket by name (the sweep's own `storage.bucket`): no URI is built just to be taken apart again. */
export function checkBucket(policy: TrustPolicy, bucket: string, field: string): string[] {
  return !policy.buckets || allows(policy.buckets, bucket)
    ? []
    : [
        `${field}: bucket "${bucket}" is not one this worker may use (allowed: ${policy.buckets.join(', ')}); the worker operator allows buckets with POLYGLOT_ALLOWED_BUCKETS`,
      ];
}

export interface JobTemplateLike {
  runner?: RunnerKind;
  image?: string;
  command: string[];
  env?: Record<string, string>;
  secretEnv?: { name: string; secretName: string; key: string }[];
  envFromSecrets?: string[];
  podAnnotations?: Record<string, string>;
  nodeSelector?: Record<string, string>;
  tolerations?: { key: string }[];
}

/** Whether a spec may set this job variable: not forbidden, and a default or the operator's name or prefix. */
function jobEnvAllowed(policy: TrustPolicy, name: string): boolean {
  if (FORBIDDEN_JOB_ENV.test(name) && !DEFAULT_JOB_ENV_EXCEPTIONS.has(name)) return false;
  return policy.jobEnv.names.has(name) || policy.jobEnv.prefixes.some((p) => name.startsWith(p));
}

const HOW_TO_ALLOW_ENV = 'the worker operator allows names with POLYGLOT_ALLOWED_JOB_ENV';

/** One job `env` entry: allowed name; endpoints checked as URLs (the worker's own S3 endpoint always allowed). */
function checkJobEnvEntry(policy: TrustPolicy, name: string, value: string, at: string): string[] {
  if (FORBIDDEN_JOB_ENV.test(name) && !DEFAULT_JOB_ENV_EXCEPTIONS.has(name))
    return [
      `${at}: a job's ${name} is set by the runner or its image, never by a spec (it decides what code runs, whom the job trusts or which credentials it uses); remove it`,
    ];
  if (CREDENTIAL_JOB_ENV.test(name) && !DEFAULT_JOB_ENV_EXCEPTIONS.has(name))
    return [`${at}: ${name} is a credential; give it by secretEnv (a Secret reference), never as a value in a spec`];
  if (!jobEnvAllowed(policy, name))
    return [
      `${at}: ${name} is not a variable this worker passes to jobs (allowed: ${[...policy.jobEnv.names, ...policy.jobEnv.prefixes.map((p) => `${p}*`)].join(', ')}); ${HOW_TO_ALLOW_ENV}`,
    ];
  if (ENDPOINT_JOB_ENV.test(name)) {
    const t = target(value);
    const own =
      typeof t !== 'string' &&
      policy.s3EndpointHost !== undefined &&
      t.url.host.toLowerCase() === policy.s3EndpointHost;
    if (!own) return checkUrl(policy, value, at);
  }
  return [];
}

/**
 * A secretEnv entry: the Secret key must be bound to this variable name, so an allowed key cannot be
 * renamed into a credential the job sends elsewhere (the S3 secret as HF_TOKEN goes to the HF hub).
 */
function checkSecretRef(
  policy: TrustPolicy,
  s: { name: string; secretName: string; key: string },
  runner: RunnerKind,
  at: string,
): string[] {
  const ref = `${s.secretName}/${s.key}`;
  // A Secret's value never goes into a variable that decides what code runs (AWS_* names are for credentials).
  if (FORBIDDEN_JOB_ENV.test(s.name) && !/^AWS_/i.test(s.name))
    return [
      `${at}.name: ${s.name} cannot be set from a Secret (it decides what code runs or is the runner's); remove it`,
    ];
  // A name the Secret's owner chose (its key) or a plain allowed setting is no credential rename.
  const harmless = (own: string) =>
    s.name === own || (jobEnvAllowed(policy, s.name) && !CREDENTIAL_JOB_ENV.test(s.name));
  if (runner === 'local') {
    const from = policy.localSecrets.get(ref);
    if (!from)
      return [
        `${at}: secret ${ref} is not mapped on this worker (local runner); the worker operator maps it to a worker variable with POLYGLOT_LOCAL_SECRETS=${ref}=<VARIABLE>`,
      ];
    if (!harmless(from))
      return [
        `${at}.name: secret ${ref} may be given to a local job only as ${from} (the worker variable it maps to), not as ${s.name}`,
      ];
    return [];
  }
  const bound = policy.secretBindings.get(ref);
  if (bound?.has(s.name)) return [];
  if (policy.secrets.has(s.secretName) && harmless(s.key)) return [];
  if (bound)
    return [
      `${at}.name: secret ${ref} may only be given as ${[...bound].join(', ')} (POLYGLOT_ALLOWED_SECRETS), not as ${s.name}`,
    ];
  if (policy.secrets.has(s.secretName))
    return [
      `${at}.name: ${s.name} is a credential or runner variable; a key of Secret "${s.secretName}" goes under that name only if the worker operator binds it: POLYGLOT_ALLOWED_SECRETS=${ref}=${s.name}`,
    ];
  return [
    `${at}.secretName: Secret "${s.secretName}" is not one jobs may use (allowed: ${[...policy.secrets, ...policy.secretBindings.keys()].join(', ') || 'none'}); the worker operator allows it in POLYGLOT_ALLOWED_SECRETS as ${ref}=${s.name}`,
  ];
}

const podKeyOk = (policy: TrustPolicy, key: string) => !policy.podKeys || allows(policy.podKeys, key);

/** A job template (spec) or job spec (activity input): command, image, environment and secret references. */
export function checkJob(
  policy: TrustPolicy,
  job: JobTemplateLike,
  runner: RunnerKind,
  field: string,
  opts: { allowEnv?: string[] } = {},
): string[] {
  const problems: string[] = [];
  if (
    policy.commands &&
    !policy.commands.some((c) => c.length === job.command.length && c.every((w, i) => w === job.command[i]))
  ) {
    problems.push(
      `${field}.command: "${job.command.join(' ')}" is not a job command this worker runs (allowed: ${policy.commands.map((c) => c.join(' ')).join(', ')}); put options in args, or the worker operator allows the command in POLYGLOT_ALLOWED_JOB_COMMANDS`,
    );
  }
  if (runner === 'kubernetes' && policy.images && job.image && !policy.images.some((p) => job.image!.startsWith(p))) {
    problems.push(
      `${field}.image: "${job.image}" is not under an allowed image prefix (${policy.images.join(', ')}); the worker operator sets POLYGLOT_ALLOWED_IMAGES`,
    );
  }
  for (const [name, value] of Object.entries(job.env ?? {})) {
    if (opts.allowEnv?.includes(name)) continue;
    problems.push(...checkJobEnvEntry(policy, name, value, `${field}.env.${name}`));
  }
  (job.secretEnv ?? []).forEach((s, i) =>
    problems.push(...checkSecretRef(policy, s, runner, `${field}.secretEnv[${i}]`)),
  );
  (job.envFromSecrets ?? []).forEach((name, i) => {
    const at = `${field}.envFromSecrets[${i}]`;
    if (runner === 'local')
      problems.push(`${at}: whole Secrets are not available to local jobs; name each key in secretEnv instead`);
    else if (!policy.secrets.has(name))
      problems.push(
        `${at}: Secret "${name}" is not one jobs may take whole (allowed: ${[...policy.secrets].join(', ') || 'none'}); the worker operator lists its bare name in POLYGLOT_ALLOWED_SECRETS`,
      );
  });
  // Where the pod runs and what its admission webhooks do (an IAM role annotation, a Vault injector, a
  // toleration for restricted nodes) is the operator's decision. The GPU toleration and gpu.product
  // selector come from `resources` (src/jobs/manifest.ts), not from these fields.
  const podKeys: [string, string[]][] = [
    ['podAnnotations', Object.keys(job.podAnnotations ?? {})],
    ['nodeSelector', Object.keys(job.nodeSelector ?? {})],
    ['tolerations', (job.tolerations ?? []).map((t) => t.key)],
  ];
  for (const [what, keys] of podKeys)
    for (const key of keys)
      if (!podKeyOk(policy, key))
        problems.push(
          `${field}.${what}: key "${key}" is not one a job may set on this worker (allowed: ${policy.podKeys?.join(', ') || 'none'}); the worker operator allows keys with POLYGLOT_ALLOWED_POD_KEYS`,
        );
  return problems;
}

/**
 * A model reference (`org/name`, `s3://…`, `random:<ref>#seed=N`) or a data root a job loads: an s3://
 * bucket must be allowed; a local path (`/…`, `./…`, `file://…`) only under an operator's prefix (the
 * CLI imports a spec file's local paths into S3, so a worker never needs one by default).
 */
export function checkModelRef(policy: TrustPolicy, ref: string, field: string): string[] {
  const bare = ref.replace(/^random:/, '').replace(/#.*$/, '');
  if (/^s3:\/\//.test(bare)) return checkBucketUri(policy, bare, field);
  const local = /^file:/i.test(bare) ? bare.replace(/^file:(\/\/)?/i, '') : bare;
  if (local.startsWith('/') || local.startsWith('.') || /^file:/i.test(bare) || local.startsWith('~')) {
    const norm = posix.normalize(local);
    if (norm.startsWith('/') && policy.localPaths.some((p) => `${norm}/`.startsWith(p))) return [];
    return [
      `${field}: "${ref}" is a path on the job's machine; give an s3:// URI (\`polyglot sweep start\` imports local files), or the worker operator allows a folder with POLYGLOT_ALLOWED_LOCAL_PATHS`,
    ];
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(bare))
    return [`${field}: "${ref}" uses a scheme jobs do not load from; give an HF id (org/name) or an s3:// URI`];
  return [];
}

/** Config keys (camelCase or snake_case, as the Python jobs accept) that name a model or data to load. */
const CONFIG_REFS = new Set(['student', 'model', 'base', 'reference', 'dataUri', 'data_uri']);

/**
 * POLYGLOT_JOB_CONFIG, which the student and anchor workflows write and a direct jobWorkflow start
 * writes as it likes: JSON, and every model or data reference in it allowed (see checkModelRef).
 */
export function checkJobConfig(policy: TrustPolicy, raw: string | undefined, field: string): string[] {
  if (raw === undefined) return [];
  let config: unknown;
  try {
    config = JSON.parse(raw);
  } catch {
    return [`${field}: not valid JSON; the job config is a JSON object`];
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) return [`${field}: must be a JSON object`];
  const problems: string[] = [];
  for (const [k, v] of Object.entries(config as Record<string, unknown>)) {
    if (typeof v === 'string' && CONFIG_REFS.has(k)) problems.push(...checkModelRef(policy, v, `${field}.${k}`));
    else if (typeof v === 'string' && /^(random:)?s3:\/\//.test(v))
      problems.push(...checkBucketUri(policy, v.replace(/^random:/, ''), `${field}.${k}`));
  }
  return problems;
}

// ---- a whole sweep spec ---------------------------------------------------------------------------

/** The parts of a sweep spec the policy looks at (structural: this module does not import the spec). */
export interface SpecLike {
  storage: { bucket: string };
  seedPool: string;
  providers: { id: string; baseUrl: string; apiKeyEnv?: string }[];
  students?: { model: string; anchors?: { base: string; reference: string } }[];
  training?: JobTemplateLike;
  evaluation?: JobTemplateLike & { dataUri: string };
  scoring?: { resultsUri?: string };
  /** The spec's own prompt files (stored s3:// URIs) and its version name. */
  templates?: Record<string, string | undefined>;
}

/** Every policy problem of a spec, each with its field; with `lookup`, host names are resolved and checked too. */
export async function checkSweepSpecPolicy(
  policy: TrustPolicy,
  spec: SpecLike,
  opts: { lookup?: Lookup } = {},
): Promise<string[]> {
  const problems: string[] = [];
  for (const [i, p] of spec.providers.entries()) {
    const field = `providers[${i}]`;
    const own = checkProvider(policy, p, field);
    problems.push(...own);
    if (opts.lookup && !own.some((x) => x.startsWith(`${field}.baseUrl`)))
      problems.push(...(await checkResolved(policy, p.baseUrl, `${field}.baseUrl`, opts.lookup)));
  }
  problems.push(...checkBucket(policy, spec.storage.bucket, 'storage.bucket'));
  problems.push(...checkBucketUri(policy, spec.seedPool, 'seedPool'));
  problems.push(...checkBucketUri(policy, spec.scoring?.resultsUri, 'scoring.resultsUri'));
  for (const [part, uri] of Object.entries(spec.templates ?? {}))
    if (uri?.startsWith('s3://')) problems.push(...checkBucketUri(policy, uri, `templates.${part}`));
  (spec.students ?? []).forEach((s, i) => {
    problems.push(...checkModelRef(policy, s.model, `students[${i}].model`));
    if (s.anchors) {
      problems.push(...checkModelRef(policy, s.anchors.base, `students[${i}].anchors.base`));
      problems.push(...checkModelRef(policy, s.anchors.reference, `students[${i}].anchors.reference`));
    }
  });
  if (spec.training) problems.push(...checkJob(policy, spec.training, spec.training.runner ?? 'local', 'training'));
  if (spec.evaluation) {
    problems.push(...checkJob(policy, spec.evaluation, spec.evaluation.runner ?? 'local', 'evaluation'));
    problems.push(...checkModelRef(policy, spec.evaluation.dataUri, 'evaluation.dataUri'));
  }
  return problems;
}

// ---- the HTTP guard -------------------------------------------------------------------------------

/**
 * A fetch that checks each request's host (and what it resolves to) against the policy just before
 * sending, and never follows a redirect: a 3xx would carry the Authorization header to wherever the
 * server points. (The name is resolved again by fetch itself; an answer that changes between the two
 * lookups — DNS rebinding — is not caught here: list exact hosts where that matters.)
 */
export function guardedFetch(
  policy: TrustPolicy,
  base: typeof fetch = fetch,
  lookup: Lookup = systemLookup,
): typeof fetch {
  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const problems = [...checkUrl(policy, url, 'request'), ...(await checkResolved(policy, url, 'request', lookup))];
    if (problems.length) throw new PolicyViolationError(problems);
    const res = await base(input, { ...init, redirect: 'manual' });
    if (res.status >= 300 && res.status < 400) {
      const to = res.headers.get('location');
      let where = 'elsewhere';
      try {
        if (to) where = new URL(to, url).host;
      } catch {
        // an unparseable Location: say "elsewhere"
      }
      throw new PolicyViolationError([
        `request: ${new URL(url).host} answered ${res.status}, a redirect to ${where}; redirects are not followed (the API key would go along): set baseUrl to the final URL`,
      ]);
    }
    return res;
  };
}

// ---- what any worker refuses ----------------------------------------------------------------------

/**
 * The problems every worker refuses under any policy short of an exact exception: a worker credential
 * as a provider key, a metadata or link-local target (by name, literal or resolved address), a job
 * variable that changes what code runs. The CLI reports these as errors even when it cannot know the
 * worker's allow-lists.
 */
export async function alwaysRefused(spec: SpecLike, lookup?: Lookup): Promise<string[]> {
  const problems: string[] = [];
  const dangerous = async (raw: string, field: string) => {
    const t = target(raw);
    if (typeof t === 'string') return;
    if (METADATA_NAMES.has(t.host)) problems.push(`${field}: ${t.url.host} is a cloud metadata service; refused`);
    else if (t.ip && classifyAddress(t.host).kind === 'blocked')
      problems.push(`${field}: ${t.url.host} is ${classifyAddress(t.host).why}; refused`);
    else if (!t.ip && lookup) {
      const addresses = await lookup(t.host).catch(() => [] as string[]);
      for (const a of addresses)
        if (classifyAddress(a).kind === 'blocked')
          problems.push(`${field}: ${t.host} resolves to ${a}, ${classifyAddress(a).why}; refused`);
    }
  };
  for (const [i, p] of spec.providers.entries()) {
    await dangerous(p.baseUrl, `providers[${i}].baseUrl`);
    if (p.apiKeyEnv && RESERVED_KEY_ENV.test(p.apiKeyEnv))
      problems.push(...checkKeyEnv(readTrustPolicy({}), p.apiKeyEnv, p.baseUrl, `providers[${i}].apiKeyEnv`));
  }
  for (const [field, job] of [
    ['training', spec.training],
    ['evaluation', spec.evaluation],
  ] as const) {
    for (const [name, value] of Object.entries(job?.env ?? {})) {
      if (FORBIDDEN_JOB_ENV.test(name) && !DEFAULT_JOB_ENV_EXCEPTIONS.has(name))
        problems.push(`${field}.env.${name}: set by the worker or its image, never by a spec; remove it`);
      else if (ENDPOINT_JOB_ENV.test(name)) await dangerous(value, `${field}.env.${name}`);
    }
  }
  return problems;
}
