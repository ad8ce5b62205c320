package server

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"

	peerv1 "github.com/factstr/factstr-go/api/gen/factstr/peer/v1"
	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
)

// access is who may call a method.
type access int

const (
	accessPublic  access = iota + 1 // no credentials (health checks)
	accessAnyRole                   // any valid token (reflection)
	accessReader
	accessWriter
	accessAdmin
	accessPeer // a node identity of this cluster, never a client token
)

// role is the least role a token needs, 0 for any valid token.
func (a access) role() Role {
	switch a {
	case accessReader:
		return RoleReader
	case accessWriter:
		return RoleWriter
	case accessAdmin:
		return RoleAdmin
	}
	return 0
}

// methodAccess is the one table of who may call which method of the
// client-facing services. Every method a node serves must be here or under
// a serviceAccess prefix (TestEveryMethodHasAnAccessRule); a method in
// neither is refused. It is never modified.
var methodAccess = map[string]access{
	factstrv1.EventStoreService_Append_FullMethodName:        accessWriter,
	factstrv1.EventStoreService_AppendIf_FullMethodName:      accessWriter,
	factstrv1.EventStoreService_Writes_FullMethodName:        accessWriter,
	factstrv1.EventStoreService_Query_FullMethodName:         accessReader,
	factstrv1.EventStoreService_Reads_FullMethodName:         accessReader,
	factstrv1.EventStoreService_Stream_FullMethodName:        accessReader,
	factstrv1.EventStoreService_StreamDurable_FullMethodName: accessReader,

	factstrv1.AdminService_Status_FullMethodName:             accessReader,
	factstrv1.AdminService_Members_FullMethodName:            accessAdmin,
	factstrv1.AdminService_Join_FullMethodName:               accessAdmin,
	factstrv1.AdminService_Leave_FullMethodName:              accessAdmin,
	factstrv1.AdminService_Remove_FullMethodName:             accessAdmin,
	factstrv1.AdminService_TransferLeadership_FullMethodName: accessAdmin,
	factstrv1.AdminService_SnapshotSave_FullMethodName:       accessAdmin,
	factstrv1.AdminService_SnapshotRestore_FullMethodName:    accessAdmin,

	factstrv1.AdminService_ListDurableStreams_FullMethodName:  accessReader,
	factstrv1.AdminService_GetDurableStream_FullMethodName:    accessReader,
	factstrv1.AdminService_ResetDurableStream_FullMethodName:  accessAdmin,
	factstrv1.AdminService_DeleteDurableStream_FullMethodName: accessAdmin,
	factstrv1.AdminService_ParkedList_FullMethodName:          accessReader,
	factstrv1.AdminService_ParkedRedeliver_FullMethodName:     accessAdmin,
	factstrv1.AdminService_ParkedDrop_FullMethodName:          accessAdmin,
}

// serviceAccess covers whole services by prefix, so that a method added to
// one later is covered the moment it exists: above all the peer service,
// whose every method (unary or streaming) is for cluster nodes only.
var serviceAccess = []struct {
	prefix string
	access access
}{
	{"/" + peerv1.PeerService_ServiceDesc.ServiceName + "/", accessPeer},
	{"/grpc.health.v1.Health/", accessPublic},
	{"/grpc.reflection.", accessAnyRole},
}

func accessFor(method string) (access, bool) {
	if a, ok := methodAccess[method]; ok {
		return a, true
	}
	for _, s := range serviceAccess {
		if strings.HasPrefix(method, s.prefix) {
			return s.access, true
		}
	}
	return 0, false
}

// CheckAccessRules reports every method registered on srv that has no
// access rule. The node calls it before serving, so a service or method
// added without a rule stops the node at start instead of being refused
// at run time.
func CheckAccessRules(srv interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}) error {
	var missing []string
	for name, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + name + "/" + m.Name
			if _, ok := accessFor(full); !ok {
				missing = append(missing, full)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return fmt.Errorf("methods without an access rule (add them to internal/server/access.go): %s", strings.Join(missing, ", "))
}
