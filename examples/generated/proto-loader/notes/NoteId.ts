// Original file: examples/typed/notes.proto


export interface NoteId {
  'id'?: (string);
}

export interface NoteId__Output {
  'id': (string);
}
