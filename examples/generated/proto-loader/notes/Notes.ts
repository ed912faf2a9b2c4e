// Original file: examples/typed/notes.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { Note as _notes_Note, Note__Output as _notes_Note__Output } from '../notes/Note.js';
import type { NoteId as _notes_NoteId, NoteId__Output as _notes_NoteId__Output } from '../notes/NoteId.js';
import type { Query as _notes_Query, Query__Output as _notes_Query__Output } from '../notes/Query.js';
import type { Summary as _notes_Summary, Summary__Output as _notes_Summary__Output } from '../notes/Summary.js';

export interface NotesClient extends grpc.Client {
  Add(argument: _notes_Note, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_notes_NoteId__Output>): grpc.ClientUnaryCall;
  Add(argument: _notes_Note, metadata: grpc.Metadata, callback: grpc.requestCallback<_notes_NoteId__Output>): grpc.ClientUnaryCall;
  Add(argument: _notes_Note, options: grpc.CallOptions, callback: grpc.requestCallback<_notes_NoteId__Output>): grpc.ClientUnaryCall;
  Add(argument: _notes_Note, callback: grpc.requestCallback<_notes_NoteId__Output>): grpc.ClientUnaryCall;
  add(argument: _notes_Note, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_notes_NoteId__Output>): grpc.ClientUnaryCall;
  add(argument: _notes_Note, metadata: grpc.Metadata, callback: grpc.requestCallback<_notes_NoteId__Output>): grpc.ClientUnaryCall;
  add(argument: _notes_Note, options: grpc.CallOptions, callback: grpc.requestCallback<_notes_NoteId__Output>): grpc.ClientUnaryCall;
  add(argument: _notes_Note, callback: grpc.requestCallback<_notes_NoteId__Output>): grpc.ClientUnaryCall;
  
  Chat(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_notes_Note, _notes_Note__Output>;
  Chat(options?: grpc.CallOptions): grpc.ClientDuplexStream<_notes_Note, _notes_Note__Output>;
  chat(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_notes_Note, _notes_Note__Output>;
  chat(options?: grpc.CallOptions): grpc.ClientDuplexStream<_notes_Note, _notes_Note__Output>;
  
  List(argument: _notes_Query, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_notes_Note__Output>;
  List(argument: _notes_Query, options?: grpc.CallOptions): grpc.ClientReadableStream<_notes_Note__Output>;
  list(argument: _notes_Query, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_notes_Note__Output>;
  list(argument: _notes_Query, options?: grpc.CallOptions): grpc.ClientReadableStream<_notes_Note__Output>;
  
  Upload(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_notes_Summary__Output>): grpc.ClientWritableStream<_notes_Note>;
  Upload(metadata: grpc.Metadata, callback: grpc.requestCallback<_notes_Summary__Output>): grpc.ClientWritableStream<_notes_Note>;
  Upload(options: grpc.CallOptions, callback: grpc.requestCallback<_notes_Summary__Output>): grpc.ClientWritableStream<_notes_Note>;
  Upload(callback: grpc.requestCallback<_notes_Summary__Output>): grpc.ClientWritableStream<_notes_Note>;
  upload(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_notes_Summary__Output>): grpc.ClientWritableStream<_notes_Note>;
  upload(metadata: grpc.Metadata, callback: grpc.requestCallback<_notes_Summary__Output>): grpc.ClientWritableStream<_notes_Note>;
  upload(options: grpc.CallOptions, callback: grpc.requestCallback<_notes_Summary__Output>): grpc.ClientWritableStream<_notes_Note>;
  upload(callback: grpc.requestCallback<_notes_Summary__Output>): grpc.ClientWritableStream<_notes_Note>;
  
}

export interface NotesHandlers extends grpc.UntypedServiceImplementation {
  Add: grpc.handleUnaryCall<_notes_Note__Output, _notes_NoteId>;
  
  Chat: grpc.handleBidiStreamingCall<_notes_Note__Output, _notes_Note>;
  
  List: grpc.handleServerStreamingCall<_notes_Query__Output, _notes_Note>;
  
  Upload: grpc.handleClientStreamingCall<_notes_Note__Output, _notes_Summary>;
  
}

export interface NotesDefinition extends grpc.ServiceDefinition {
  Add: MethodDefinition<_notes_Note, _notes_NoteId, _notes_Note__Output, _notes_NoteId__Output>
  Chat: MethodDefinition<_notes_Note, _notes_Note, _notes_Note__Output, _notes_Note__Output>
  List: MethodDefinition<_notes_Query, _notes_Note, _notes_Query__Output, _notes_Note__Output>
  Upload: MethodDefinition<_notes_Note, _notes_Summary, _notes_Note__Output, _notes_Summary__Output>
}
