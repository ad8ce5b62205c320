package adminsvc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	factstrv1 "github.com/factstr/factstr-go/api/gen/factstr/v1"
	"github.com/factstr/factstr-go/cluster"
	"github.com/factstr/factstr-go/contract"
	"github.com/factstr/factstr-go/internal/adminsvc"
	"github.com/factstr/factstr-go/internal/freeport"
	"github.com/factstr/factstr-go/internal/testgrpc"
	"github.com/factstr/factstr-go/raftlog"
)

// serve runs a gRPC server with register's services on a loopback port and
// returns a connection to it.
func serve(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	return testgrpc.ServeConn(t, register)
}

// loopbackAddr is a 127.0.0.1 address free for TCP and UDP (gossip).
func loopbackAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freeport.T(t, true))
}

// A restore upload past the cap fails with ResourceExhausted and restores
// nothing; one within it succeeds.
func TestSnapshotRestoreSizeCap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := raftlog.DefaultConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
	node, err := cluster.Start(ctx, cluster.Config{
		NodeID: "r1", DataDir: t.TempDir(), RaftAddr: loopbackAddr(t), GossipAddr: loopbackAddr(t), GRPCAddr: "127.0.0.1:1",
		BootstrapExpect: 1, Raft: rc, FastGossip: true, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if _, err := node.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	for !node.Info().Leader || node.ReadBarrier(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatal("no ready leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := node.Append(ctx, []contract.NewEvent{{Type: "t", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}

	// A real backup of the node, through the admin service.
	conn := serve(t, func(s *grpc.Server) { adminsvc.NewAdmin(node, nil).WithMaxRestoreBytes(1 << 20).Register(s) })
	admin := factstrv1.NewAdminServiceClient(conn)
	save, err := admin.SnapshotSave(ctx, &factstrv1.SnapshotSaveRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var backup []byte
	for {
		m, err := save.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		backup = append(backup, m.GetChunk()...)
	}
	if len(backup) >= 1<<20 {
		t.Fatalf("backup of %d bytes does not fit the cap of the test", len(backup))
	}
	restore := func(chunks ...[]byte) error {
		st, err := admin.SnapshotRestore(ctx)
		if err != nil {
			return err
		}
		for _, c := range chunks {
			if err := st.Send(&factstrv1.SnapshotRestoreRequest{Chunk: c}); err != nil {
				break // the server ended the call; CloseAndRecv has the status
			}
		}
		_, err = st.CloseAndRecv()
		return err
	}
	tooBig := [][]byte{backup}
	for range 4 {
		tooBig = append(tooBig, make([]byte, 512<<10))
	}
	head := node.Info().Head
	err = restore(tooBig...)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized restore: %v, want ResourceExhausted", err)
	}
	if node.Info().Head != head {
		t.Fatalf("head moved from %d to %d after a refused restore", head, node.Info().Head)
	}
	if err := restore(backup); err != nil {
		t.Fatalf("restore within the cap: %v", err)
	}
}
