import http from 'node:http';

/**
 * An HTTP proxy in front of the local LLM server that answers as vLLM does for a model whose tokenizer adds a
 * BOS token (Gemma, Llama): the prompt of `/v1/completions` is scored after a BOS token, and the echo lists
 * that BOS first, with a `null` logprob, and the first prompt token scored given it; `/tokenize` adds the BOS
 * unless `add_special_tokens` is false; `usage.prompt_tokens` counts it. Everything else passes through.
 * It works by writing the BOS token's text in front of the prompt: the local server reads special-token text as
 * the special token, so the model really sees (and scores after) a BOS token.
 */
export function startBosEchoProxy(
  upstream: string,
  bos: { id: number; text: string },
): Promise<{ url: string; close: () => void }> {
  const call = async (path: string, body: unknown) => {
    const r = await fetch(`${upstream}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        let out: { status: number; body: Record<string, unknown> };
        if (path === '/v1/completions' && typeof body.prompt === 'string') {
          out = await call(path, { ...body, prompt: bos.text + body.prompt });
          // The echoed text is the prompt as sent, without the BOS (vLLM echoes the request's prompt string).
          const choices = (out.body.choices ?? []) as { text?: string }[];
          for (const c of choices)
            if (body.echo === true && c.text?.startsWith(bos.text)) c.text = c.text.slice(bos.text.length);
        } else if (path === '/tokenize') {
          out = await call(path, body);
          if (out.status === 200 && body.add_special_tokens !== false) {
            const tokens = [bos.id, ...(out.body.tokens as number[])];
            out.body = { ...out.body, tokens, count: tokens.length };
          }
        } else out = await call(path, body);
        res.writeHead(out.status, { 'content-type': 'application/json' }).end(JSON.stringify(out.body));
      })().catch((e: unknown) => res.writeHead(502).end(String(e)));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => {
          server.close();
          server.closeAllConnections();
        },
      });
    }),
  );
}
