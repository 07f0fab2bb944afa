// Types of /daebus.js, the Daebus gateway's client for kiosk pages.

/** Codes the client gives when the gateway's own answer is missing. */
export declare const CLIENT_CODES: Readonly<{
  offline: string;
  aborted: string;
  timeout: string;
  interrupted: string;
  bad_response: string;
}>;

/** A failed call: the gateway's error code and the HTTP status (0: no answer). */
export declare class DaebusError extends Error {
  constructor(message: string, options?: { code: string; status?: number; details?: unknown; cause?: unknown });
  readonly name: "DaebusError";
  /** The gateway's code ("not_exposed", "timeout", a handler's own...) or one of CLIENT_CODES. */
  readonly code: string;
  readonly status: number;
  /** What broke the action's payload schema, when the gateway says. */
  readonly details?: Array<{ path: string; message: string }>;
}

export interface CallOptions {
  /** Seconds the gateway waits for the reply (capped by its max_timeout). */
  timeout?: number;
  /** Each progress reply of the action, in order, before the result. */
  onProgress?: (progress: any) => void;
  /** Aborting it rejects the call with code "aborted" and cancels it on the service. */
  signal?: AbortSignal;
}

export type StreamState = "connecting" | "live" | "reconnecting" | "offline";

export interface StreamDetail {
  /** "redis": the gateway lost Redis; "unreachable": nothing answers;
   *  "refused": the gateway refuses the stream (code, message, status say why);
   *  "interrupted": the stream ended and is being reopened;
   *  "busy": a reconnect storm, the gateway asked to come back after retry_ms. */
  reason: "redis" | "unreachable" | "refused" | "interrupted" | "busy";
  code?: string;
  message?: string;
  status?: number;
  retry_ms?: number;
}

export interface SubscribeOptions {
  onStatus?: (state: StreamState, detail: StreamDetail | null) => void;
  /** Events on these channels may have been missed (more than the gateway keeps). */
  onGap?: (channels: string[]) => void;
  /** Milliseconds of failed reconnection before the state turns "offline" (5000). */
  offlineAfter?: number;
  backoff?: BackoffOptions;
}

export interface Subscription {
  readonly state: StreamState;
  readonly detail: StreamDetail | null;
  /** The id the stream resumes after. */
  readonly lastEventId: string | null;
  readonly attempts: number;
  close(): void;
}

export interface BackoffOptions {
  base?: number;
  max?: number;
  jitter?: number;
  random?: () => number;
}

export interface Client {
  call<T = any>(service: string, action: string, payload?: object, options?: CallOptions): Promise<T>;
  subscribe(channels: string | string[],
            onEvent: (channel: string, data: any, meta: { id: string | null }) => void,
            options?: SubscribeOptions): Subscription;
  readonly config: { baseUrl: string; token: string | null };
}

/** A client for the gateway at baseUrl (default: where daebus.js came from). */
export declare function createClient(options?: { baseUrl?: string; token?: string | null }): Client;
/** Set the default client's gateway address or token. */
export declare function configure(options: { baseUrl?: string; token?: string | null }): void;
export declare const call: Client["call"];
export declare const subscribe: Client["subscribe"];

export declare function errorFromAnswer(status: number, body: unknown): DaebusError;
export declare function backoffDelay(attempt: number, options?: BackoffOptions): number;
/** The wait the gateway asked for (ms), stretched by up to `jitter` (0.2). */
export declare function hintedDelay(ms: number, options?: { jitter?: number; random?: () => number }): number;
export declare function sseParser(): (text: string) => Array<{ event: string; data: string; id: string | null }>;
