import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  PolicyConfigError,
  PolicyViolationError,
  checkJob,
  checkJobConfig,
  checkKeyEnv,
  checkResolved,
  checkSweepSpecPolicy,
  checkUrl,
  classifyAddress,
  guardedFetch,
  readTrustPolicy,
  type Lookup,
} from '../../src/common/policy';
import { clientFor } from '../../src/activities/provider';
import { ChatClient } from '../../src/llm/client';
import { LimiterRegistry } from '../../src/llm/limiter';
import type { Provider, SweepSpec } from '../../src/spec/sweep';
import { specPolicyProblems } from '../../src/cli/policy';

const policy = (env: Record<string, string> = {}) => readTrustPolicy(env);
const lookupTo =
  (...addresses: string[]): Lookup =>
  async () =>
    addresses;

describe('trust policy: provider key variables', () => {
  const url = 'https://api.openai.com/v1';
  const hosted = policy({ POLYGLOT_ALLOWED_HOSTS: 'api.openai.com' });

  it('allows POLYGLOT_PROVIDER_KEY_* by default and nothing else', () => {
    assert.deepEqual(checkKeyEnv(hosted, 'POLYGLOT_PROVIDER_KEY_OPENAI', url, 'f'), []);
    const [p] = checkKeyEnv(hosted, 'OPENAI_API_KEY', url, 'providers[0].apiKeyEnv');
    assert.match(p!, /^providers\[0\]\.apiKeyEnv: OPENAI_API_KEY is not an allowed provider key variable/);
    assert.match(p!, /POLYGLOT_ALLOWED_KEY_ENVS/);
    for (const name of ['HF_TOKEN', 'GITHUB_TOKEN', 'HOME'])
      assert.equal(checkKeyEnv(hosted, name, url, 'f').length, 1, name);
  });

  it('allows an operator-listed variable', () => {
    const p = policy({
      POLYGLOT_ALLOWED_HOSTS: 'api.openai.com',
      POLYGLOT_ALLOWED_KEY_ENVS: 'OPENAI_API_KEY,HF_TOKEN',
    });
    assert.deepEqual(checkKeyEnv(p, 'OPENAI_API_KEY', url, 'f'), []);
    assert.deepEqual(checkKeyEnv(p, 'HF_TOKEN', url, 'f'), []);
  });

  it("never sends the worker's own credentials, even when listed", () => {
    const p = policy({ POLYGLOT_ALLOWED_KEY_ENVS: 'AWS_SECRET_ACCESS_KEY,POLYGLOT_CODEC_KEY,TEMPORAL_TLS_KEY' });
    for (const name of ['AWS_SECRET_ACCESS_KEY', 'AWS_ACCESS_KEY_ID', 'POLYGLOT_CODEC_KEY', 'TEMPORAL_TLS_KEY']) {
      const [problem] = checkKeyEnv(p, name, url, 'providers[1].apiKeyEnv');
      assert.match(
        problem!,
        new RegExp(`^providers\\[1\\]\\.apiKeyEnv: ${name} is one of the worker's own credentials`),
      );
    }
  });

  it('binds a listed key to its hosts', () => {
    const p = policy({
      POLYGLOT_ALLOWED_HOSTS: 'api.openai.com,*.example.com',
      POLYGLOT_ALLOWED_KEY_ENVS: 'OPENAI_API_KEY@api.openai.com',
    });
    assert.deepEqual(checkKeyEnv(p, 'OPENAI_API_KEY', url, 'f'), []);
    const [problem] = checkKeyEnv(p, 'OPENAI_API_KEY', 'https://llm.example.com/v1', 'f');
    assert.match(problem!, /OPENAI_API_KEY may only be sent to api\.openai\.com .*not to llm\.example\.com/);
  });

  it('rejects a malformed setting at start', () => {
    assert.throws(() => readTrustPolicy({ POLYGLOT_ALLOWED_KEY_ENVS: 'NOT A NAME' }), PolicyConfigError);
    assert.throws(() => readTrustPolicy({ POLYGLOT_ALLOWED_HOSTS: 'a*b.com' }), PolicyConfigError);
    assert.throws(() => readTrustPolicy({ POLYGLOT_LOCAL_SECRETS: 'hf-token=HF_TOKEN' }), PolicyConfigError);
  });
});

describe('trust policy: hosts and addresses', () => {
  it('classifies IPv4, IPv6, IPv4-mapped, NAT64 and 6to4 addresses', () => {
    const cases: [string, string][] = [
      ['169.254.169.254', 'blocked'],
      ['169.254.0.1', 'blocked'],
      ['100.100.100.200', 'blocked'],
      ['0.0.0.0', 'blocked'],
      ['224.0.0.1', 'blocked'],
      ['255.255.255.255', 'blocked'],
      ['127.0.0.1', 'loopback'],
      ['127.9.9.9', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.31.0.1', 'private'],
      ['172.32.0.1', 'public'],
      ['192.168.1.1', 'private'],
      ['8.8.8.8', 'public'],
      ['::1', 'loopback'],
      ['::', 'blocked'],
      ['fe80::1', 'blocked'],
      ['febf::1', 'blocked'],
      ['fd00:ec2::254', 'blocked'],
      ['fd12::1', 'private'],
      ['ff02::1', 'blocked'],
      ['::ffff:169.254.169.254', 'blocked'],
      ['::ffff:a9fe:a9fe', 'blocked'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:8.8.8.8', 'public'],
      ['64:ff9b::a9fe:a9fe', 'blocked'],
      ['2002:a9fe:a9fe::1', 'blocked'],
      ['2606:4700::1111', 'public'],
    ];
    for (const [ip, kind] of cases) assert.equal(classifyAddress(ip).kind, kind, ip);
  });

  it('allows loopback by default (a dev worker) and nothing else', () => {
    const p = policy();
    for (const u of ['http://127.0.0.1:8000/v1', 'http://localhost:9/v1', 'http://[::1]:8000/v1'])
      assert.deepEqual(checkUrl(p, u, 'f'), [], u);
    const [problem] = checkUrl(p, 'https://api.openai.com/v1', 'providers[0].baseUrl');
    assert.match(problem!, /^providers\[0\]\.baseUrl: host api\.openai\.com is not allowed by this worker/);
    assert.match(problem!, /POLYGLOT_ALLOWED_HOSTS/);
  });

  it('refuses link-local and metadata addresses in every spelling, even under "*"', () => {
    const p = policy({ POLYGLOT_ALLOWED_HOSTS: '*' });
    for (const u of [
      'http://169.254.169.254/latest/meta-data/',
      'http://0xA9FEA9FE/',
      'http://2852039166/',
      'http://169.254.169.254.:80/',
      'http://[::ffff:169.254.169.254]/',
      'http://[fe80::1]/',
      'http://[fd00:ec2::254]/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://METADATA.google.internal./',
      'http://0.0.0.0:8000/',
    ]) {
      const problems = checkUrl(p, u, 'providers[0].baseUrl');
      assert.equal(problems.length, 1, u);
      assert.match(problems[0]!, /refused/, u);
    }
  });

  it('allows a dangerous address only when the operator names it exactly', () => {
    const p = policy({ POLYGLOT_ALLOWED_HOSTS: 'http://169.254.169.254,http://metadata.google.internal' });
    assert.deepEqual(checkUrl(p, 'http://169.254.169.254/', 'f'), []);
    assert.deepEqual(checkUrl(p, 'http://metadata.google.internal/', 'f'), []);
  });

  it('matches ports, wildcards and schemes', () => {
    const p = policy({ POLYGLOT_ALLOWED_HOSTS: '127.0.0.1:8000,*.example.com,http://vllm.svc:8000,*' });
    assert.deepEqual(checkUrl(p, 'http://127.0.0.1:8000/v1', 'f'), []);
    // Only a wildcard could allow these, and wildcards reach public addresses only.
    assert.match(checkUrl(p, 'http://127.0.0.1:8001/v1', 'f')[0]!, /loopback address that only a wildcard allows/);
    assert.match(checkUrl(p, 'https://10.0.0.1/v1', 'f')[0]!, /private address that only a wildcard allows/);
    assert.deepEqual(checkUrl(p, 'https://llm.example.com/v1', 'f'), []);
    assert.match(checkUrl(p, 'http://llm.example.com/v1', 'f')[0]!, /plain http to llm\.example\.com is refused/);
    assert.deepEqual(checkUrl(p, 'http://vllm.svc:8000/v1', 'f'), []);
    assert.match(checkUrl(p, 'http://vllm.svc:9000/v1', 'f')[0]!, /plain http/);
    assert.match(checkUrl(p, 'https://user:pw@llm.example.com/v1', 'f')[0]!, /user name or password/);
    const narrow = policy({ POLYGLOT_ALLOWED_HOSTS: '127.0.0.1:8000' });
    assert.match(checkUrl(narrow, 'http://127.0.0.1:8001/v1', 'f')[0]!, /host 127\.0\.0\.1:8001 is not allowed/);
    assert.match(checkUrl(narrow, 'http://localhost:8000/v1', 'f')[0]!, /host localhost:8000 is not allowed/);
  });

  it('checks what a name resolves to', async () => {
    const p = policy({ POLYGLOT_ALLOWED_HOSTS: 'llm.corp.internal,*.example.com' });
    const [metadata] = await checkResolved(p, 'https://llm.example.com/v1', 'f', lookupTo('169.254.169.254'));
    assert.match(metadata!, /llm\.example\.com resolves to 169\.254\.169\.254, a link-local address/);
    // Even an exactly named host may not lead to metadata.
    assert.equal(
      (await checkResolved(p, 'https://llm.corp.internal/', 'f', lookupTo('::ffff:169.254.169.254'))).length,
      1,
    );
    // A wildcard does not reach private addresses; an exact name does.
    assert.match(
      (await checkResolved(p, 'https://llm.example.com/v1', 'f', lookupTo('10.0.0.7')))[0]!,
      /private address 10\.0\.0\.7, which a wildcard does not allow/,
    );
    assert.deepEqual(await checkResolved(p, 'https://llm.corp.internal/v1', 'f', lookupTo('10.0.0.7')), []);
    assert.deepEqual(await checkResolved(p, 'https://llm.example.com/v1', 'f', lookupTo('93.184.216.34')), []);
    assert.deepEqual(
      await checkResolved(p, 'https://llm.example.com/v1', 'f', () => Promise.reject(new Error('ENOTFOUND'))),
      [],
      'an unresolvable name fails the request itself, retryably',
    );
  });
});

describe('trust policy: jobs and buckets', () => {
  const job = { command: ['polyglot-train'], env: {}, secretEnv: [], envFromSecrets: [] };

  it('runs only allowed commands', () => {
    assert.deepEqual(checkJob(policy(), job, 'local', 'training'), []);
    const [p] = checkJob(policy(), { ...job, command: ['sh', '-c', 'env'] }, 'local', 'training');
    assert.match(p!, /^training\.command: "sh -c env" is not a job command this worker runs/);
    assert.deepEqual(
      checkJob(policy({ POLYGLOT_ALLOWED_JOB_COMMANDS: '*' }), { ...job, command: ['sh'] }, 'local', 'f'),
      [],
    );
  });

  it('resolves local secrets only through the operator map, and Kubernetes Secrets only when allowed', () => {
    const leak = { ...job, secretEnv: [{ name: 'STOLEN', secretName: 'anything', key: 'HF_TOKEN' }] };
    assert.match(
      checkJob(policy(), leak, 'local', 'training')[0]!,
      /training\.secretEnv\[0\]: secret anything\/HF_TOKEN is not mapped/,
    );
    const s3 = {
      ...job,
      secretEnv: [{ name: 'AWS_SECRET_ACCESS_KEY', secretName: 'polyglot-s3', key: 'secret-access-key' }],
    };
    assert.deepEqual(checkJob(policy(), s3, 'local', 'training'), []);
    assert.deepEqual(checkJob(policy(), s3, 'kubernetes', 'training'), []);
    const hf = {
      ...job,
      secretEnv: [{ name: 'HF_TOKEN', secretName: 'hf-token', key: 'token' }],
      envFromSecrets: ['all-keys'],
    };
    const problems = checkJob(policy(), hf, 'kubernetes', 'training');
    assert.equal(problems.length, 2);
    assert.match(
      problems[0]!,
      /secretEnv\[0\]\.secretName: Secret "hf-token" is not one jobs may use .*POLYGLOT_ALLOWED_SECRETS/,
    );
    assert.match(problems[1]!, /envFromSecrets\[0\]: Secret "all-keys"/);
    assert.deepEqual(
      checkJob(policy({ POLYGLOT_ALLOWED_SECRETS: 'hf-token/token=HF_TOKEN,all-keys' }), hf, 'kubernetes', 'f'),
      [],
    );
  });

  it('binds a Secret key to its variable: an allowed key cannot be renamed into another credential', () => {
    // The S3 secret as HF_TOKEN would go to the HF hub as a Bearer token.
    const renamed = {
      ...job,
      secretEnv: [{ name: 'HF_TOKEN', secretName: 'polyglot-s3', key: 'secret-access-key' }],
    };
    for (const runner of ['kubernetes', 'local'] as const) {
      const [p, ...more] = checkJob(policy(), renamed, runner, 'training');
      assert.deepEqual(more, [], runner);
      assert.match(
        p!,
        /^training\.secretEnv\[0\]\.name: secret polyglot-s3\/secret-access-key may .*AWS_SECRET_ACCESS_KEY/,
      );
    }
    // A bare Secret name: its keys under their own names, or under a plain allowed setting; never a credential.
    const bare = policy({ POLYGLOT_ALLOWED_SECRETS: 'team-secrets' });
    const ref = (name: string, key: string) => ({ ...job, secretEnv: [{ name, secretName: 'team-secrets', key }] });
    assert.deepEqual(checkJob(bare, ref('HF_TOKEN', 'HF_TOKEN'), 'kubernetes', 'f'), []);
    assert.deepEqual(checkJob(bare, ref('HF_HUB_OFFLINE', 'offline'), 'kubernetes', 'f'), []);
    assert.match(
      checkJob(bare, ref('HF_TOKEN', 'aws-key'), 'kubernetes', 'f')[0]!,
      /POLYGLOT_ALLOWED_SECRETS=team-secrets\/aws-key=HF_TOKEN/,
    );
    assert.match(
      checkJob(bare, ref('PYTHONWARNINGS', 'PYTHONWARNINGS'), 'kubernetes', 'f')[0]!,
      /cannot be set from a Secret/,
    );
    // Whole Secrets only by a bare name: a binding allows its one key.
    assert.match(
      checkJob(policy(), { ...job, envFromSecrets: ['polyglot-s3'] }, 'kubernetes', 'f')[0]!,
      /envFromSecrets\[0\]: Secret "polyglot-s3" is not one jobs may take whole/,
    );
    assert.throws(() => readTrustPolicy({ POLYGLOT_ALLOWED_SECRETS: 'a/b=not a name' }), PolicyConfigError);
  });

  it('passes a job only the variables on its allow-list (PYTHONWARNINGS and BROWSER run code)', () => {
    // PYTHONWARNINGS imports the named module at interpreter start; `antigravity` then opens $BROWSER.
    const env = { PYTHONWARNINGS: 'ignore::antigravity.X', BROWSER: "sh -c 'id > /tmp/pwned' %s" };
    const problems = checkJob(policy(), { ...job, env }, 'local', 'training');
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.match(
      problems[0]!,
      /^training\.env\.PYTHONWARNINGS: a job's PYTHONWARNINGS is set by the runner or its image/,
    );
    assert.match(problems[1]!, /^training\.env\.BROWSER: /);
    // Not even when the operator lists them (or a prefix of them).
    const listed = policy({ POLYGLOT_ALLOWED_JOB_ENV: 'PYTHONWARNINGS,BROWSER,PYTHON*' });
    assert.equal(checkJob(listed, { ...job, env }, 'local', 'training').length, 2);
    // The runner's own values and credentials are not a spec's either.
    for (const name of ['HOME', 'POLYGLOT_MODEL_CACHE', 'POLYGLOT_OUTPUT_URI', 'HF_TOKEN', 'OPENAI_API_KEY'])
      assert.equal(checkJob(policy(), { ...job, env: { [name]: 'x' } }, 'local', 'f').length, 1, name);
    // Unknown names need the operator; names and PREFIX_* both work.
    const mine = { ...job, env: { FAKE_JOB_SLEEP_MS: '1', MY_SETTING: 'a', HF_HUB_OFFLINE: '1' } };
    assert.match(
      checkJob(policy(), mine, 'local', 'f').join('\n'),
      /f\.env\.FAKE_JOB_SLEEP_MS: .*POLYGLOT_ALLOWED_JOB_ENV/,
    );
    assert.deepEqual(checkJob(policy({ POLYGLOT_ALLOWED_JOB_ENV: 'FAKE_JOB_*,MY_SETTING' }), mine, 'local', 'f'), []);
    assert.throws(() => readTrustPolicy({ POLYGLOT_ALLOWED_JOB_ENV: 'A-B' }), PolicyConfigError);
  });

  it('refuses pod annotations, node selectors and tolerations unless the operator allows their keys', () => {
    const pod = {
      ...job,
      podAnnotations: { 'iam.amazonaws.com/role': 'admin', 'vault.hashicorp.com/agent-inject-secret-db': 'db' },
      nodeSelector: { 'node-role.kubernetes.io/control-plane': '' },
      tolerations: [{ key: 'dedicated' }],
    };
    const problems = checkJob(policy(), pod, 'kubernetes', 'job');
    assert.deepEqual(
      problems.map((p) => p.split(':')[0] + ':' + p.split(':')[1]),
      [
        'job.podAnnotations: key "iam.amazonaws.com/role" is not one a job may set on this worker (allowed',
        'job.podAnnotations: key "vault.hashicorp.com/agent-inject-secret-db" is not one a job may set on this worker (allowed',
        'job.nodeSelector: key "node-role.kubernetes.io/control-plane" is not one a job may set on this worker (allowed',
        'job.tolerations: key "dedicated" is not one a job may set on this worker (allowed',
      ],
    );
    const allowed = policy({
      POLYGLOT_ALLOWED_POD_KEYS: 'iam.amazonaws.com/role,vault.hashicorp.com/*,node-role.kubernetes.io/*,dedicated',
    });
    assert.deepEqual(checkJob(allowed, pod, 'kubernetes', 'job'), []);
    assert.deepEqual(checkJob(policy({ POLYGLOT_ALLOWED_POD_KEYS: '*' }), pod, 'kubernetes', 'job'), []);
  });

  it('checks the models and data a job config names: buckets, and no local paths unless allowed', () => {
    const p = policy({ POLYGLOT_ALLOWED_BUCKETS: 'polyglot-*' });
    const config = (c: Record<string, unknown>) => JSON.stringify(c);
    assert.deepEqual(checkJobConfig(p, config({ student: 'org/model@rev', model: 's3://polyglot-a/m/' }), 'c'), []);
    const bad = checkJobConfig(
      p,
      config({
        student: 's3://other-bucket/m/',
        model: 'random:/home/worker/models/x#seed=1',
        reference: 'file:///etc/',
        dataUri: './data',
        extra: 's3://elsewhere/x',
      }),
      'c',
    );
    assert.deepEqual(
      bad.map((x) => x.split(':')[0]),
      ['c.student', 'c.model', 'c.reference', 'c.dataUri', 'c.extra'],
    );
    assert.match(bad[1]!, /is a path on the job's machine; .*POLYGLOT_ALLOWED_LOCAL_PATHS/);
    const local = policy({ POLYGLOT_ALLOWED_LOCAL_PATHS: '/models' });
    assert.deepEqual(checkJobConfig(local, config({ model: '/models/x', student: 'file:///models/y' }), 'c'), []);
    assert.equal(checkJobConfig(local, config({ model: '/models/../etc' }), 'c').length, 1, 'normalized first');
    assert.match(checkJobConfig(p, '{not json', 'c')[0]!, /c: not valid JSON/);
  });

  it('refuses job variables that change the code or the endpoints credentials go to', () => {
    const env = {
      LD_PRELOAD: '/tmp/x.so',
      HTTPS_PROXY: 'http://evil',
      AWS_ENDPOINT_URL: 'http://169.254.169.254/',
      HF_HUB_OFFLINE: '1',
    };
    const problems = checkJob(policy({ S3_ENDPOINT: 'http://127.0.0.1:9000' }), { ...job, env }, 'local', 'training');
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.match(problems.join('\n'), /training\.env\.LD_PRELOAD/);
    assert.match(problems.join('\n'), /training\.env\.HTTPS_PROXY/);
    assert.match(problems.join('\n'), /training\.env\.AWS_ENDPOINT_URL: http:\/\/169\.254\.169\.254 is a link-local/);
    // The worker's own S3 endpoint is always fine.
    const own = { ...job, env: { AWS_ENDPOINT_URL: 'http://s3.internal:9000' } };
    assert.deepEqual(checkJob(policy({ S3_ENDPOINT: 'http://s3.internal:9000' }), own, 'kubernetes', 'f'), []);
  });

  it('allows only listed image prefixes on Kubernetes', () => {
    const p = policy({ POLYGLOT_ALLOWED_IMAGES: 'ghcr.io/polyglot/' });
    assert.deepEqual(checkJob(p, { ...job, image: 'ghcr.io/polyglot/trainer:1' }, 'kubernetes', 'f'), []);
    assert.match(checkJob(p, { ...job, image: 'docker.io/evil/x' }, 'kubernetes', 'training')[0]!, /training\.image/);
  });

  it('reports every problem of a spec at once, buckets included', async () => {
    const p = policy({ POLYGLOT_ALLOWED_BUCKETS: 'polyglot-*' });
    const problems = await checkSweepSpecPolicy(p, {
      storage: { bucket: 'other' },
      seedPool: 's3://other/polyglot/seeds/sha256-x',
      providers: [
        { id: 'a', baseUrl: 'http://169.254.169.254/v1' },
        { id: 'b', baseUrl: 'http://127.0.0.1:8000/v1', apiKeyEnv: 'AWS_SECRET_ACCESS_KEY' },
      ],
      students: [{ model: 's3://polyglot-models/m/', anchors: { base: 'file:///srv/base', reference: 'org/ref' } }],
      scoring: { resultsUri: 's3://elsewhere/r.json' },
      templates: {
        version: 'v1',
        system: `s3://polyglot-ok/p/templates/sha256-${'1'.repeat(64)}.txt`,
        respond: `s3://elsewhere/p/templates/sha256-${'2'.repeat(64)}.txt`,
      },
    });
    const fields = problems.map((x) => x.split(':')[0]);
    assert.deepEqual(fields, [
      'providers[0].baseUrl',
      'providers[1].apiKeyEnv',
      'storage.bucket',
      'seedPool',
      'scoring.resultsUri',
      'templates.respond',
      'students[0].anchors.base',
    ]);
  });
});

describe('trust policy: requests', () => {
  let foreign: Server;
  let redirector: Server;
  const seen: (string | undefined)[] = [];
  const listen = (s: Server) =>
    new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
  let foreignPort: number;
  let redirectPort: number;
  before(async () => {
    foreign = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.end('{}');
    });
    foreignPort = await listen(foreign);
    redirector = createServer((_req, res) => {
      res.writeHead(307, { location: `http://127.0.0.1:${foreignPort}/v1/chat/completions` }).end();
    });
    redirectPort = await listen(redirector);
  });
  after(() => {
    foreign.close();
    redirector.close();
  });

  it('does not follow a redirect to another host, so the key does not travel', async () => {
    const p = policy({ POLYGLOT_ALLOWED_HOSTS: `127.0.0.1:${redirectPort}` });
    const client = new ChatClient({
      baseUrl: `http://127.0.0.1:${redirectPort}/v1`,
      apiKey: 'sk-never-leaves',
      timeoutMs: 5000,
      fetchImpl: guardedFetch(p),
    });
    await assert.rejects(
      client.chat({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      (e: Error) => e instanceof PolicyViolationError && /answered 307, a redirect to 127\.0\.0\.1:\d+/.test(e.message),
    );
    // The client alone, without the guard, refuses too.
    const bare = new ChatClient({
      baseUrl: `http://127.0.0.1:${redirectPort}/v1`,
      apiKey: 'sk-never-leaves',
      timeoutMs: 5000,
    });
    await assert.rejects(bare.chat({ model: 'm', messages: [] }), /307, a redirect; redirects are not followed/);
    assert.deepEqual(seen, [], 'the foreign host received no request');
  });

  it('refuses a request whose name resolves to a metadata address, before connecting', async () => {
    const p = policy({ POLYGLOT_ALLOWED_HOSTS: '*' });
    let called = false;
    const f = guardedFetch(
      p,
      (async () => {
        called = true;
        return new Response('{}');
      }) as typeof fetch,
      lookupTo('169.254.169.254'),
    );
    await assert.rejects(
      f('https://rebound.example.com/v1/chat/completions', { method: 'POST' }),
      PolicyViolationError,
    );
    assert.equal(called, false);
  });
});

describe('trust policy: provider clients on the worker', () => {
  const provider = (over: Partial<Provider>): Provider => ({
    id: 'p',
    baseUrl: 'http://127.0.0.1:8000/v1',
    concurrency: 1,
    pricePerMTok: { input: 0, output: 0 },
    timeoutSeconds: 5,
    ...over,
  });
  /** An environment that records which variables were read. */
  const watched = () => {
    const read: string[] = [];
    const env = new Proxy(
      { AWS_SECRET_ACCESS_KEY: 's3-secret', POLYGLOT_PROVIDER_KEY_A: 'sk-a' } as NodeJS.ProcessEnv,
      {
        get: (t, k) => {
          if (typeof k === 'string') read.push(k);
          return t[k as string];
        },
      },
    );
    return { env, read };
  };

  it('refuses a disallowed key variable without reading it', () => {
    const { env, read } = watched();
    assert.throws(
      () =>
        clientFor(
          { limiters: new LimiterRegistry(), env, policy: policy() },
          provider({ apiKeyEnv: 'AWS_SECRET_ACCESS_KEY' }),
        ),
      (e: Error) =>
        e instanceof PolicyViolationError &&
        e.type === 'PolicyViolation' &&
        !e.retryable &&
        !e.message.includes('s3-secret'),
    );
    assert.ok(!read.includes('AWS_SECRET_ACCESS_KEY'));
  });

  it('refuses a host off the allow-list, and builds a client for an allowed one', () => {
    const { env } = watched();
    const deps = { limiters: new LimiterRegistry(), env, policy: policy({ POLYGLOT_ALLOWED_HOSTS: '127.0.0.1:8000' }) };
    assert.throws(
      () => clientFor(deps, provider({ baseUrl: 'http://127.0.0.1:8001/v1', apiKeyEnv: 'POLYGLOT_PROVIDER_KEY_A' })),
      /provider "p"\.baseUrl: host 127\.0\.0\.1:8001 is not allowed/,
    );
    assert.ok(clientFor(deps, provider({ apiKeyEnv: 'POLYGLOT_PROVIDER_KEY_A' })).client);
  });
});

describe('trust policy: what the CLI reports', () => {
  const spec = (provider: { baseUrl: string; apiKeyEnv?: string }) =>
    ({
      storage: { bucket: 'b', prefix: 'p' },
      seedPool: 's3://b/p/seeds/sha256-x',
      providers: [{ id: 'p', ...provider }],
      students: [],
      scoring: {},
    }) as unknown as SweepSpec;

  it("without the worker's settings: errors for what every worker refuses, warnings for the defaults", async () => {
    const hosted = await specPolicyProblems(
      spec({ baseUrl: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_API_KEY' }),
      {},
      lookupTo('162.159.140.245'),
    );
    assert.deepEqual(hosted.errors, []);
    assert.equal(hosted.warnings.length, 2);
    const rebound = await specPolicyProblems(
      spec({ baseUrl: 'https://x.example.com/v1' }),
      {},
      lookupTo('169.254.169.254'),
    );
    assert.match(rebound.errors[0]!, /x\.example\.com resolves to 169\.254\.169\.254/);
    const s3key = await specPolicyProblems(
      spec({ baseUrl: 'http://127.0.0.1:1/v1', apiKeyEnv: 'AWS_SESSION_TOKEN' }),
      {},
    );
    assert.match(s3key.errors[0]!, /AWS_SESSION_TOKEN is one of the worker's own credentials/);
  });

  it("with the worker's settings in its environment: enforced as on the worker", async () => {
    const r = await specPolicyProblems(
      spec({ baseUrl: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_API_KEY' }),
      { POLYGLOT_ALLOWED_HOSTS: 'api.openai.com' },
      lookupTo('162.159.140.245'),
    );
    assert.deepEqual(r.warnings, []);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!, /OPENAI_API_KEY is not an allowed provider key variable/);
  });
});
