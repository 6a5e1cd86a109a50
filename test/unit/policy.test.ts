import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  PolicyConfigError,
  PolicyViolationError,
  checkJob,
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
    assert.deepEqual(checkJob(policy({ POLYGLOT_ALLOWED_SECRETS: 'hf-token,all-keys' }), hf, 'kubernetes', 'f'), []);
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
      students: [{ model: 's3://polyglot-models/m/' }],
      scoring: { resultsUri: 's3://elsewhere/r.json' },
    });
    const fields = problems.map((x) => x.split(':')[0]);
    assert.deepEqual(fields, [
      'providers[0].baseUrl',
      'providers[1].apiKeyEnv',
      'storage.bucket',
      'seedPool',
      'scoring.resultsUri',
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
