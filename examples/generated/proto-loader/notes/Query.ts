// Original file: examples/typed/notes.proto


export interface Query {
  'prefix'?: (string);
  'limit'?: (number);
}

export interface Query__Output {
  'prefix': (string);
  'limit': (number);
}
