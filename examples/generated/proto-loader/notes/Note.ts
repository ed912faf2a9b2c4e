// Original file: examples/typed/notes.proto


export interface Note {
  'id'?: (string);
  'text'?: (string);
  'stars'?: (number);
}

export interface Note__Output {
  'id': (string);
  'text': (string);
  'stars': (number);
}
