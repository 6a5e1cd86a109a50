import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { ErrorType, PolyglotError } from '../common/errors';
import { parseJsonAt } from './integrity';
import { keys } from './layout';

/**
 * The S3 adapter. Every artifact goes through here. Writes are whole-object PUTs, so a reader never
 * sees half an object; completion is signalled by writing a marker/manifest object last.
 */

export function makeS3Client(endpoint: string | undefined, region: string): S3Client {
  return new S3Client({
    endpoint,
    region,
    forcePathStyle: endpoint !== undefined,
    // Non-AWS endpoints mishandle aws-chunked trailing checksums (docs/local-stack.md, "S3");
    // send checksums only when required.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
}

export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new PolyglotError(ErrorType.InvalidInput, `not an s3:// URI: ${uri}`);
  return { bucket: m[1]!, key: m[2]! };
}

function isNotFound(e: unknown): boolean {
  if (e instanceof S3ServiceException) {
    return (
      e.$metadata.httpStatusCode === 404 || e.name === 'NoSuchKey' || e.name === 'NotFound' || e.name === 'NoSuchBucket'
    );
  }
  return false;
}

function storageError(op: string, key: string, e: unknown): PolyglotError {
  const msg = e instanceof Error ? e.message : String(e);
  return new PolyglotError(ErrorType.StorageError, `S3 ${op} ${key}: ${msg}`);
}

export class S3Store {
  constructor(
    readonly client: S3Client,
    readonly bucket: string,
  ) {}

  uri(key: string): string {
    return keys.uri(this.bucket, key);
  }

  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (e) {
      if (!isNotFound(e) && !(e instanceof S3ServiceException && e.$metadata.httpStatusCode === 403)) {
        throw storageError('HeadBucket', this.bucket, e);
      }
      try {
        await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
      } catch (err) {
        const name = err instanceof Error ? err.name : '';
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists')
          throw storageError('CreateBucket', this.bucket, err);
      }
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw storageError('HeadObject', key, e);
    }
  }

  async putText(key: string, body: string | Uint8Array, contentType = 'application/octet-stream'): Promise<string> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: contentType,
          // Known up front: without it the SDK treats a large buffer as a stream of unknown length.
          ContentLength: typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength,
        }),
      );
      return this.uri(key);
    } catch (e) {
      throw storageError('PutObject', key, e);
    }
  }

  putJson(key: string, value: unknown): Promise<string> {
    return this.putText(key, JSON.stringify(value, null, 2) + '\n', 'application/json');
  }

  async getBytes(key: string): Promise<Uint8Array | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw storageError('GetObject', key, e);
    }
  }

  async getText(key: string): Promise<string | undefined> {
    const bytes = await this.getBytes(key);
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  }

  /** A parse error names the object and the line (CorruptArtifact), never a bare SyntaxError. */
  async getJson<T>(key: string): Promise<T | undefined> {
    const text = await this.getText(key);
    return text === undefined ? undefined : parseJsonAt<T>(text, this.uri(key));
  }

  /** Delete an object (absent is fine): used to discard an artifact that failed its integrity check. */
  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (e) {
      if (!isNotFound(e)) throw storageError('DeleteObject', key, e);
    }
  }

  /** All keys under a prefix, paging through ListObjectsV2. */
  async list(prefix: string): Promise<string[]> {
    return [...(await this.listSizes(prefix)).keys()];
  }

  /** Every key under a prefix with its size in bytes, sorted by key (one paged LIST, no reads). */
  async listSizes(prefix: string): Promise<Map<string, number>> {
    const keys: [string, number][] = [];
    let token: string | undefined;
    try {
      do {
        const out = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const o of out.Contents ?? []) if (o.Key) keys.push([o.Key, o.Size ?? 0]);
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      if (isNotFound(e)) return new Map();
      throw storageError('ListObjectsV2', prefix, e);
    }
    return new Map(keys.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

/**
 * One store per bucket, sharing a client: a worker serves sweeps that may use different buckets.
 * `allow` (the worker's bucket allow-list) runs before a bucket's store is handed out, so no activity —
 * whichever workflow started it, a child started directly included — reads or creates a bucket the
 * operator did not allow.
 */
export class StoreRegistry {
  private stores = new Map<string, S3Store>();
  constructor(
    readonly client: S3Client,
    private readonly allow?: (bucket: string) => void,
  ) {}
  for(bucket: string): S3Store {
    this.allow?.(bucket);
    let s = this.stores.get(bucket);
    if (!s) {
      s = new S3Store(this.client, bucket);
      this.stores.set(bucket, s);
    }
    return s;
  }
  /** The same stores (and client), with `allow` checked before each hand-out. */
  guarded(allow: (bucket: string) => void): StoreRegistry {
    const g = new StoreRegistry(this.client, allow);
    g.stores = this.stores;
    return g;
  }
}
