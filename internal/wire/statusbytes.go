package wire

import (
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// StatusBytes is err as the gRPC status a unary call would have ended with,
// in its binary encoding: how an answer on a Writes or Reads stream carries
// a failed call.
func StatusBytes(err error) []byte {
	b, merr := proto.Marshal(status.Convert(err).Proto())
	if merr != nil {
		b, _ = proto.Marshal(status.New(codes.Internal, merr.Error()).Proto())
	}
	return b
}

// StatusFromBytes is the error StatusBytes encoded, as the unary call would
// have returned it; an undecodable status, or one with code OK (a failed
// call never has it), is an INTERNAL error.
func StatusFromBytes(b []byte) error {
	var st spb.Status
	if err := proto.Unmarshal(b, &st); err != nil {
		return status.Errorf(codes.Internal, "undecodable status in a stream answer: %v", err)
	}
	if st.GetCode() == int32(codes.OK) {
		return status.Error(codes.Internal, "a stream answer with status OK and no result")
	}
	return status.ErrorProto(&st)
}
