import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';

/**
 * The remote codec endpoint the Temporal Web UI calls (its "codec endpoint" setting, or the dev server's
 * `--ui-codec-endpoint`): POST /decode and /encode with `{"payloads": [{"metadata": {k: base64},
 * "data": base64}]}`, answered in the same shape. The browser calls it directly, so it answers CORS
 * preflights for the UI's origins only. It listens on 127.0.0.1 unless told otherwise: whoever can reach
 * it can decrypt, so off a workstation it belongs behind the same login as the Web UI.
 */
export interface CodecServerOptions {
  codec: PayloadCodec;
  port?: number;
  host?: string;
  /** Origins of the Web UI allowed to call it (e.g. http://127.0.0.1:8233). */
  corsOrigins: string[];
  /** Namespaces it serves (the UI sends X-Namespace); empty = any. */
  namespaces?: string[];
}

interface JsonPayload {
  metadata?: Record<string, string> | null;
  data?: string | null;
}

const MAX_BODY = 8 * 1024 * 1024;

function fromJson(p: JsonPayload): Payload {
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = new Uint8Array(Buffer.from(v, 'base64'));
  return { metadata, data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')) };
}

function toJson(p: Payload): JsonPayload {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v).toString('base64');
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new Error(`request body over ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startCodecServer(opts: CodecServerOptions): Promise<{ server: Server; url: string }> {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const origin = req.headers.origin;
    if (origin && opts.corsOrigins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
    }
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (origin && !opts.corsOrigins.includes(origin)) {
      return reply(403, {
        message: `origin ${origin} is not allowed; start the codec server with --cors-origin ${origin}`,
      });
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204);
      return res.end();
    }
    const route = (req.url ?? '').split('?')[0]!.replace(/\/+$/, '');
    if (req.method !== 'POST' || !['/encode', '/decode'].includes(route)) {
      return reply(404, { message: 'POST /encode or /decode' });
    }
    const ns = req.headers['x-namespace'];
    if (opts.namespaces?.length && typeof ns === 'string' && !opts.namespaces.includes(ns)) {
      return reply(403, { message: `namespace ${ns} is not served here` });
    }
    let payloads: Payload[];
    try {
      const body = JSON.parse(await readBody(req)) as { payloads?: JsonPayload[] };
      if (!Array.isArray(body.payloads)) throw new Error('body.payloads: expected an array of payloads');
      payloads = body.payloads.map(fromJson);
    } catch (e) {
      return reply(400, { message: (e as Error).message });
    }
    try {
      const out = route === '/encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
      reply(200, { payloads: out.map(toJson) });
    } catch (e) {
      // A payload that cannot be decrypted is the caller's problem to see, not a server crash.
      reply(422, { message: (e as Error).message });
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ message: (e as Error).message }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://${opts.host ?? '127.0.0.1'}:${port}` };
}
