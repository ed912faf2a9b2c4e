// Original file: examples/typed/notes.proto


export interface Summary {
  'count'?: (number);
}

export interface Summary__Output {
  'count': (number);
}
