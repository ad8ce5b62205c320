package server

import (
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// Why a codec: proto3 refuses a string field that is not valid UTF-8 while
// decoding, and gRPC reports every decoding failure as Internal (the node's
// fault, worth a retry), before any handler or interceptor runs; neither
// can change that code afterwards. For the event store's requests this
// codec decodes such strings as they are instead, so the contract's own
// validation refuses them with InvalidArgument and a message naming the
// field (an event type, a filter's type, a durable name), like every other
// invalid event or query. Every other message, and every request that
// decodes, goes through gRPC's proto codec unchanged.

// CodecOption is the server option that installs the codec.
func CodecOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(codec{proto: encoding.GetCodecV2("proto")})
}

type codec struct{ proto encoding.CodecV2 }

func (c codec) Name() string { return c.proto.Name() }

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.proto.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok || !lenient(m) {
		return err
	}
	proto.Reset(m)
	if lerr := unmarshalKeepingStrings(data.Materialize(), m.ProtoReflect(), 0); lerr != nil {
		return errors.Join(err, lerr)
	}
	return nil
}

// lenient reports whether m is a request whose handler validates every
// string field it uses before it goes anywhere.
func lenient(m proto.Message) bool {
	switch m.(type) {
	case *factstrv1.AppendRequest, *factstrv1.AppendIfRequest, *factstrv1.QueryRequest,
		*factstrv1.StreamRequest, *factstrv1.StreamDurableRequest:
		return true
	}
	return false
}

// maxNesting bounds the recursion of unmarshalKeepingStrings as protobuf
// bounds its own.
const maxNesting = 100

// unmarshalKeepingStrings decodes b into m like proto.Unmarshal, except
// that string fields keep their bytes even when they are not valid UTF-8.
// Strings and messages are decoded here; every other field is handed to
// proto.Unmarshal (merging), which decodes scalars exactly as always.
func unmarshalKeepingStrings(b []byte, m protoreflect.Message, depth int) error {
	if depth > maxNesting {
		return errors.New("message nested too deeply")
	}
	fields := m.Descriptor().Fields()
	var rest []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		vn := protowire.ConsumeFieldValue(num, typ, b[n:])
		if vn < 0 {
			return protowire.ParseError(vn)
		}
		field := b[:n+vn]
		b = b[n+vn:]
		fd := fields.ByNumber(num)
		if fd == nil || typ != protowire.BytesType || fd.IsMap() ||
			(fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.MessageKind) {
			rest = append(rest, field...)
			continue
		}
		v, _ := protowire.ConsumeBytes(field[n:])
		if fd.Kind() == protoreflect.StringKind {
			s := protoreflect.ValueOfString(string(v))
			if fd.IsList() {
				m.Mutable(fd).List().Append(s)
			} else {
				m.Set(fd, s)
			}
			continue
		}
		var sub protoreflect.Message
		if fd.IsList() {
			sub = m.Mutable(fd).List().AppendMutable().Message()
		} else {
			sub = m.Mutable(fd).Message()
		}
		if err := unmarshalKeepingStrings(v, sub, depth+1); err != nil {
			return fmt.Errorf("field %s: %w", fd.Name(), err)
		}
	}
	if len(rest) == 0 {
		return nil
	}
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(rest, m.Interface())
}
