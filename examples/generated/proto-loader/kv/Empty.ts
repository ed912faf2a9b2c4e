// Original file: examples/kv/kv.proto


export interface Empty {
}

export interface Empty__Output {
}
