// Original file: examples/kv/kv.proto


export interface GetResponse {
  'value'?: (Buffer | Uint8Array | string);
}

export interface GetResponse__Output {
  'value': (Buffer);
}
