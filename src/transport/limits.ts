/**
 * Largest gRPC message either side accepts or sends by default. go-plugin allows 2 GiB, which lets a
 * peer make the other allocate that much; 16 MiB carries large values and bounds memory per call.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/**
 * Streams a peer may hold open at once on one connection to a gRPC server of ours (RFC 9113's smallest
 * recommended limit; grpc-go's client assumes it until told).
 */
export const MAX_PEER_CONCURRENT_STREAMS = 100;
