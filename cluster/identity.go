package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/factstr/factstr-go/internal/fsutil"
	"github.com/factstr/factstr-go/membership"
)

// identity is what ties a data directory to one node of one cluster:
// node.json (the node id the directory was created for, and the cluster id
// once the node belongs to one) and the incarnation, the random id of the
// directory itself (membership.IncarnationFile) that tells a wiped node
// from one that kept its state. Every reader of these goes through here.
type identity struct {
	dir         string
	nodeID      string
	incarnation string
	clusterID   atomic.Value // string; "" until known
}

type nodeFile struct {
	NodeID    string `json:"node_id"`
	ClusterID string `json:"cluster_id,omitempty"`
}

// openIdentity claims dir for nodeID (refusing a directory of another
// node) and reads or creates its incarnation.
func openIdentity(dir, nodeID string) (*identity, error) {
	clusterID, err := claimDataDir(dir, nodeID)
	if err != nil {
		return nil, err
	}
	incarnation, err := membership.IncarnationFile(dir)
	if err != nil {
		return nil, err
	}
	i := &identity{dir: dir, nodeID: nodeID, incarnation: incarnation}
	i.clusterID.Store(clusterID)
	return i, nil
}

// ClusterID returns the cluster's id, or "" while this node is not yet
// part of a cluster.
func (i *identity) ClusterID() string {
	id, _ := i.clusterID.Load().(string)
	return id
}

// recordClusterID writes id into node.json once; it reports whether it
// did (false: already recorded). A different id is refused: a data
// directory belongs to one cluster for good.
func (i *identity) recordClusterID(id string) (bool, error) {
	if id == "" || i.ClusterID() == id {
		return false, nil
	}
	if cur := i.ClusterID(); cur != "" {
		return false, fmt.Errorf("%w: this node belongs to cluster %s, not %s", ErrWrongCluster, cur, id)
	}
	b, _ := json.Marshal(nodeFile{NodeID: i.nodeID, ClusterID: id})
	if err := fsutil.WriteFile(filepath.Join(i.dir, "node.json"), b, 0o640); err != nil {
		return false, fmt.Errorf("record cluster id: %w", err)
	}
	i.clusterID.Store(id)
	return true, nil
}

// claimDataDir binds the data directory to this node id and returns the
// cluster id recorded in it ("" before the node belongs to a cluster).
func claimDataDir(dir, nodeID string) (string, error) {
	path := filepath.Join(dir, "node.json")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var f nodeFile
		if err := json.Unmarshal(b, &f); err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
		if f.NodeID != nodeID {
			return "", fmt.Errorf("%w: %s holds node %q, this node is %q; use that node id or an empty directory", ErrWrongNode, dir, f.NodeID, nodeID)
		}
		return f.ClusterID, nil
	case os.IsNotExist(err):
		b, _ := json.Marshal(nodeFile{NodeID: nodeID})
		return "", fsutil.WriteFile(path, b, 0o640)
	default:
		return "", fmt.Errorf("read %s: %w", path, err)
	}
}
