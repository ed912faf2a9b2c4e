import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { Note as _notes_Note, Note__Output as _notes_Note__Output } from './notes/Note.js';
import type { NoteId as _notes_NoteId, NoteId__Output as _notes_NoteId__Output } from './notes/NoteId.js';
import type { NotesClient as _notes_NotesClient, NotesDefinition as _notes_NotesDefinition } from './notes/Notes.js';
import type { Query as _notes_Query, Query__Output as _notes_Query__Output } from './notes/Query.js';
import type { Summary as _notes_Summary, Summary__Output as _notes_Summary__Output } from './notes/Summary.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  notes: {
    Note: MessageTypeDefinition<_notes_Note, _notes_Note__Output>
    NoteId: MessageTypeDefinition<_notes_NoteId, _notes_NoteId__Output>
    Notes: SubtypeConstructor<typeof grpc.Client, _notes_NotesClient> & { service: _notes_NotesDefinition }
    Query: MessageTypeDefinition<_notes_Query, _notes_Query__Output>
    Summary: MessageTypeDefinition<_notes_Summary, _notes_Summary__Output>
  }
}

