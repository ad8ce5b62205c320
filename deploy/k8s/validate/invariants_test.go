package validate

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// wantReplicas is the StatefulSet size each kustomization must render.
var wantReplicas = map[string]int32{
	"base":                 3,
	"overlays/single-node": 3,
	"overlays/tls":         3,
	"overlays/scale-5":     5,
}

// rendered is one kustomization's output, strictly decoded.
type rendered struct {
	name        string
	sts         []*appsv1.StatefulSet
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	pdbs        []*policyv1.PodDisruptionBudget
	netpols     []*networkingv1.NetworkPolicy
	accounts    map[string]*corev1.ServiceAccount
	kindsByName []string
}

// kustomizations lists every directory under deploy/k8s with a
// kustomization.yaml, relative to deploy/k8s.
func kustomizations(t *testing.T) []string {
	t.Helper()
	root := filepath.Join(deployDir, "k8s")
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "kustomization.yaml" {
			r, _ := filepath.Rel(root, filepath.Dir(path))
			dirs = append(dirs, filepath.ToSlash(r))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for want := range wantReplicas {
		if !slices.Contains(dirs, want) {
			t.Errorf("kustomization %s is missing", want)
		}
	}
	return dirs
}

// render runs kustomize (the library kubectl -k uses) on deploy/k8s/<dir>
// and strictly decodes the output.
func render(t *testing.T, dir string) *rendered {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(deployDir, "k8s", dir))
	if err != nil {
		t.Fatal(err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := splitDocs(out)
	if err != nil {
		t.Fatal(err)
	}
	r := &rendered{name: dir, services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}, accounts: map[string]*corev1.ServiceAccount{}}
	for i, doc := range docs {
		obj, err := decodeDoc(doc)
		if err != nil {
			t.Fatalf("%s: rendered document %d: %v\n%s", dir, i+1, err, doc)
		}
		switch o := obj.(type) {
		case *appsv1.StatefulSet:
			r.sts = append(r.sts, o)
		case *corev1.Service:
			r.services[o.Name] = o
		case *corev1.ConfigMap:
			r.configMaps[o.Name] = o
		case *corev1.ServiceAccount:
			r.accounts[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			r.pdbs = append(r.pdbs, o)
		case *networkingv1.NetworkPolicy:
			r.netpols = append(r.netpols, o)
		default:
			t.Errorf("%s: unexpected rendered object %T", dir, obj)
		}
		var meta struct {
			Kind     string
			Metadata struct{ Name string }
		}
		_ = yaml.Unmarshal(doc, &meta)
		r.kindsByName = append(r.kindsByName, meta.Kind+"/"+meta.Metadata.Name)
	}
	return r
}

func TestKustomizationsRenderAndHoldInvariants(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(strings.ReplaceAll(dir, "/", "_"), func(t *testing.T) {
			r := render(t, dir)
			t.Logf("%s renders %v", dir, r.kindsByName)
			checkInvariants(t, r)
		})
	}
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func checkInvariants(t *testing.T, r *rendered) {
	if len(r.sts) != 1 {
		t.Fatalf("want exactly one StatefulSet, got %d", len(r.sts))
	}
	sts := r.sts[0]
	spec := sts.Spec
	pod := spec.Template.Spec
	where := r.name + ": StatefulSet " + sts.Name

	// Size: the kustomization's expected size, odd, equal to --bootstrap-expect.
	if spec.Replicas == nil {
		t.Fatalf("%s: replicas not set", where)
	}
	replicas := *spec.Replicas
	if want, ok := wantReplicas[r.name]; ok && replicas != want {
		t.Errorf("%s: replicas %d, want %d", where, replicas, want)
	}
	if replicas < 3 || replicas%2 == 0 {
		t.Errorf("%s: replicas %d; a Raft cluster wants an odd number of at least 3 voters", where, replicas)
	}
	if spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("%s: podManagementPolicy %q; bootstrapping needs all pods started together (Parallel)", where, spec.PodManagementPolicy)
	}

	// Selector: matches the template, equals the PDB's, the Services' and the NetworkPolicy's.
	sel := spec.Selector.MatchLabels
	if len(sel) == 0 || len(spec.Selector.MatchExpressions) > 0 {
		t.Errorf("%s: selector should be plain matchLabels, got %+v", where, spec.Selector)
	}
	for k, v := range sel {
		if spec.Template.Labels[k] != v {
			t.Errorf("%s: template labels %v do not match selector %v", where, spec.Template.Labels, sel)
		}
	}
	if len(r.pdbs) != 1 {
		t.Errorf("%s: want one PodDisruptionBudget, got %d", r.name, len(r.pdbs))
	}
	for _, pdb := range r.pdbs {
		if pdb.Spec.Selector == nil || !maps.Equal(pdb.Spec.Selector.MatchLabels, sel) || len(pdb.Spec.Selector.MatchExpressions) > 0 {
			t.Errorf("%s: PDB %s selector %+v differs from the StatefulSet selector %v", r.name, pdb.Name, pdb.Spec.Selector, sel)
		}
		if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) || pdb.Spec.MinAvailable != nil {
			t.Errorf("%s: PDB %s wants maxUnavailable: 1 (and no minAvailable), got %v/%v", r.name, pdb.Name, pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
		}
	}

	// serviceName is the headless Service, which publishes not-ready pods.
	headless, ok := r.services[spec.ServiceName]
	switch {
	case !ok:
		t.Errorf("%s: serviceName %q is not a Service of this kustomization", where, spec.ServiceName)
	case headless.Spec.ClusterIP != corev1.ClusterIPNone:
		t.Errorf("%s: serviceName %q is not headless (clusterIP %q)", where, spec.ServiceName, headless.Spec.ClusterIP)
	case !headless.Spec.PublishNotReadyAddresses:
		t.Errorf("%s: headless Service %q must set publishNotReadyAddresses: true (peers must find not-ready nodes)", where, spec.ServiceName)
	}
	var client *corev1.Service
	for _, svc := range r.services {
		if !maps.Equal(svc.Spec.Selector, sel) {
			t.Errorf("%s: Service %s selector %v differs from the StatefulSet selector %v", r.name, svc.Name, svc.Spec.Selector, sel)
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			client = svc
		}
	}
	if client == nil {
		t.Errorf("%s: no client (non-headless) Service", r.name)
	} else if client.Spec.PublishNotReadyAddresses {
		t.Errorf("%s: client Service %s must only route to Ready pods", r.name, client.Name)
	}
	if pod.ServiceAccountName == "" || r.accounts[pod.ServiceAccountName] == nil {
		t.Errorf("%s: serviceAccountName %q is not a ServiceAccount of this kustomization", where, pod.ServiceAccountName)
	}

	if len(pod.Containers) != 1 {
		t.Fatalf("%s: want one container, got %d", where, len(pod.Containers))
	}
	c := pod.Containers[0]
	cwhere := where + " container " + c.Name
	named := map[string]corev1.ContainerPort{}
	numbered := map[int32]bool{}
	for _, p := range c.Ports {
		named[p.Name] = p
		numbered[p.ContainerPort] = true
	}
	portExists := func(what string, p intstr.IntOrString) {
		if p.Type == intstr.String {
			if _, ok := named[p.StrVal]; !ok {
				t.Errorf("%s: %s names port %q, which the container does not declare", cwhere, what, p.StrVal)
			}
		} else if !numbered[p.IntVal] {
			t.Errorf("%s: %s uses port %d, which the container does not declare", cwhere, what, p.IntVal)
		}
	}
	for _, svc := range r.services {
		for _, p := range svc.Spec.Ports {
			portExists("Service "+svc.Name+" port "+p.Name, p.TargetPort)
			if cp, ok := named[p.TargetPort.StrVal]; ok && p.TargetPort.Type == intstr.String && protocol(cp.Protocol) != protocol(p.Protocol) {
				t.Errorf("%s: Service %s port %s is %s, container port %s is %s", r.name, svc.Name, p.Name, protocol(p.Protocol), cp.Name, protocol(cp.Protocol))
			}
		}
	}
	for _, np := range r.netpols {
		if !maps.Equal(np.Spec.PodSelector.MatchLabels, sel) {
			t.Errorf("%s: NetworkPolicy %s podSelector %v differs from the StatefulSet selector %v", r.name, np.Name, np.Spec.PodSelector.MatchLabels, sel)
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil {
					portExists("NetworkPolicy "+np.Name, *p.Port)
				}
			}
		}
	}
	if len(r.netpols) != 1 {
		t.Errorf("%s: want one NetworkPolicy, got %d", r.name, len(r.netpols))
	}

	// Probes: ports exist; the gRPC health services mean readiness ("")
	// and liveness ("liveness"); exec probes run factstr-node with real flags.
	probes := map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe}
	for name, p := range probes {
		if p == nil {
			if name != "startupProbe" {
				t.Errorf("%s: no %s", cwhere, name)
			}
			continue
		}
		pw := cwhere + " " + name
		switch {
		case p.GRPC != nil:
			portExists(name, intstr.FromInt32(p.GRPC.Port))
			svc := ""
			if p.GRPC.Service != nil {
				svc = *p.GRPC.Service
			}
			want := "liveness"
			if name == "readinessProbe" {
				want = ""
			}
			if svc != want {
				t.Errorf("%s: gRPC health service %q, want %q", pw, svc, want)
			}
			if named["grpc"].ContainerPort != p.GRPC.Port {
				t.Errorf("%s: probes port %d, the gRPC port is %d", pw, p.GRPC.Port, named["grpc"].ContainerPort)
			}
		case p.Exec != nil:
			cmd := p.Exec.Command
			if len(cmd) < 2 || filepath.Base(cmd[0]) != "factstr-node" {
				t.Errorf("%s: exec probe should run factstr-node, got %v", pw, cmd)
				continue
			}
			checkCommandLine(t, pw, cmd[1:])
			for _, a := range cmd {
				if varRef.MatchString(a) {
					t.Errorf("%s: %q: the kubelet does not expand $(VAR) in probe commands", pw, a)
				}
			}
		default:
			t.Errorf("%s: want a gRPC or exec probe, got %+v", pw, p.ProbeHandler)
		}
	}

	// Environment: FACTSTR_* names are flags; $(VAR) references point at
	// variables defined before them (envFrom first, then env in order).
	defined := map[string]bool{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		cm, ok := r.configMaps[ef.ConfigMapRef.Name]
		if !ok {
			t.Errorf("%s: envFrom ConfigMap %q is not in this kustomization", cwhere, ef.ConfigMapRef.Name)
			continue
		}
		for k := range cm.Data {
			defined[k] = true
			checkEnvName(t, cwhere+" ConfigMap "+cm.Name, k)
		}
	}
	for _, e := range c.Env {
		for _, m := range varRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[m[1]] {
				t.Errorf("%s: env %s refers to $(%s), which is not defined before it (the kubelet would leave it unexpanded)", cwhere, e.Name, m[1])
			}
		}
		defined[e.Name] = true
		checkEnvName(t, cwhere+" env", e.Name)
	}
	if len(c.Command) > 0 {
		t.Errorf("%s: command %v overrides the image's entrypoint; give args only", cwhere, c.Command)
	}
	for _, a := range c.Args {
		for _, m := range varRef.FindAllStringSubmatch(a, -1) {
			if !defined[m[1]] {
				t.Errorf("%s: argument %q refers to $(%s), which the container does not define", cwhere, a, m[1])
			}
		}
	}
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Errorf("%s: args should start with serve, got %v", cwhere, c.Args)
	}
	checkCommandLine(t, cwhere+" args", c.Args)

	args := map[string]string{}
	for _, a := range c.Args {
		if name, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "="); ok {
			args[name] = v
		}
	}
	if args["node-id"] != "$(POD_NAME)" {
		t.Errorf("%s: --node-id should be the pod name $(POD_NAME), got %q", cwhere, args["node-id"])
	}
	if n, err := strconv.Atoi(args["bootstrap-expect"]); err != nil || int32(n) != replicas {
		t.Errorf("%s: --bootstrap-expect=%q, want the replica count %d", cwhere, args["bootstrap-expect"], replicas)
	}
	wantAdvertise := "$(POD_NAME)." + spec.ServiceName + ".$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN)"
	if args["advertise-addr"] != wantAdvertise {
		t.Errorf("%s: --advertise-addr=%q, want the pod's stable DNS name %q", cwhere, args["advertise-addr"], wantAdvertise)
	}
	wantJoin := spec.ServiceName + ".$(POD_NAMESPACE).svc.$(CLUSTER_DOMAIN):" + portOf(args["gossip-addr"])
	if args["join"] != wantJoin {
		t.Errorf("%s: --join=%q, want the headless Service %q", cwhere, args["join"], wantJoin)
	}
	for flag, port := range map[string]string{"grpc-addr": "grpc", "raft-addr": "raft", "gossip-addr": "gossip"} {
		p := named[port]
		if args[flag] != fmt.Sprintf("0.0.0.0:%d", p.ContainerPort) {
			t.Errorf("%s: --%s=%q, want 0.0.0.0:%d (the %s container port)", cwhere, flag, args[flag], p.ContainerPort, port)
		}
	}
	if named["gossip-udp"].ContainerPort != named["gossip"].ContainerPort || named["gossip-udp"].Protocol != corev1.ProtocolUDP {
		t.Errorf("%s: gossip needs the same port over TCP and UDP, got %+v and %+v", cwhere, named["gossip"], named["gossip-udp"])
	}

	// Data: the volumeClaimTemplate is mounted at --data-dir.
	if len(spec.VolumeClaimTemplates) != 1 {
		t.Errorf("%s: want one volumeClaimTemplate, got %d", where, len(spec.VolumeClaimTemplates))
	} else {
		vct := spec.VolumeClaimTemplates[0].Name
		mounted := false
		for _, m := range c.VolumeMounts {
			if m.Name == vct && m.MountPath == args["data-dir"] {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("%s: volumeClaimTemplate %q is not mounted at --data-dir %q", cwhere, vct, args["data-dir"])
		}
	}

	// Resources, grace period and scheduling.
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("%s: no %s request", cwhere, res)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Errorf("%s: no memory limit", cwhere)
	}
	shutdown := 20 * time.Second
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if v, ok := r.configMaps[ef.ConfigMapRef.Name].Data["FACTSTR_SHUTDOWN_TIMEOUT"]; ok {
				d, err := time.ParseDuration(v)
				if err != nil {
					t.Errorf("%s: FACTSTR_SHUTDOWN_TIMEOUT=%q: %v", cwhere, v, err)
				}
				shutdown = d
			}
		}
	}
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second < shutdown+10*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds %v leaves no room for the %v shutdown (leadership handover)", where, pod.TerminationGracePeriodSeconds, shutdown)
	}
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil {
		t.Errorf("%s: no pod anti-affinity", where)
	} else if r.name != "overlays/single-node" && len(pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Errorf("%s: the hostname anti-affinity should be required outside the single-node overlay", where)
	}
	if len(pod.TopologySpreadConstraints) == 0 {
		t.Errorf("%s: no topology spread constraint", where)
	}
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: pods should run as non-root", where)
	}

	checkSecurity(t, r, cwhere, c, probes)

	// TLS overlay: the Secret is mounted where FACTSTR_TLS_* point.
	if r.name == "overlays/tls" {
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		for _, k := range []string{"FACTSTR_TLS_CERT", "FACTSTR_TLS_KEY", "FACTSTR_TLS_CA"} {
			p := env[k]
			ok := false
			for _, m := range c.VolumeMounts {
				if p != "" && strings.HasPrefix(p, m.MountPath+"/") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: %s=%q is not under a mounted volume", cwhere, k, p)
			}
		}
		for name, p := range probes {
			if p != nil && p.GRPC != nil {
				t.Errorf("%s: %s is a gRPC probe; the kubelet's gRPC probes cannot speak TLS", cwhere, name)
			}
		}
	}
}

func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func portOf(hostport string) string {
	i := strings.LastIndex(hostport, ":")
	if i < 0 {
		return ""
	}
	return hostport[i+1:]
}

// TestScaleOverlayOnlyChangesSize checks the scale-5 patch repeats the base
// arguments with only --bootstrap-expect changed (a strategic merge patch
// replaces a list of strings whole, so drift would go unnoticed).
func TestScaleOverlayOnlyChangesSize(t *testing.T) {
	base, five := render(t, "base"), render(t, "overlays/scale-5")
	a, b := base.sts[0].Spec.Template.Spec.Containers[0].Args, five.sts[0].Spec.Template.Spec.Containers[0].Args
	if len(a) != len(b) {
		t.Fatalf("args differ in length:\nbase   %v\nscale5 %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] && !(strings.HasPrefix(a[i], "--bootstrap-expect=") && b[i] == "--bootstrap-expect=5") {
			t.Errorf("argument %d differs: base %q, scale-5 %q", i, a[i], b[i])
		}
	}
}

// TestComposeFlags checks deploy/docker-compose.yml: every serve flag and
// FACTSTR_* variable it gives exists, and the three nodes join each other by
// service name.
func TestComposeFlags(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command     []string          `json:"command"`
			Environment map[string]string `json:"environment"`
			EnvFile     string            `json:"env_file"`
			Healthcheck struct {
				Test []string `json:"test"`
			} `json:"healthcheck"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	if len(compose.Services) != 3 {
		t.Fatalf("want 3 services, got %d", len(compose.Services))
	}
	for name, svc := range compose.Services {
		w := "docker-compose.yml service " + name
		checkCommandLine(t, w+" command", svc.Command)
		for k := range svc.Environment {
			checkEnvName(t, w, k)
		}
		if hc := svc.Healthcheck.Test; len(hc) > 2 && hc[0] == "CMD" {
			checkCommandLine(t, w+" healthcheck", hc[2:])
		}
		// Secrets from the env file, never in the compose file; nothing
		// insecure.
		if svc.EnvFile == "" {
			t.Errorf("%s: no env_file with FACTSTR_CLUSTER_KEY and FACTSTR_TOKEN", w)
		}
		for _, k := range []string{"FACTSTR_CLUSTER_KEY", "FACTSTR_TOKEN", "FACTSTR_INSECURE", "FACTSTR_RAFT_TLS"} {
			if _, ok := svc.Environment[k]; ok {
				t.Errorf("%s: environment sets %s", w, k)
			}
		}
		for _, a := range svc.Command {
			for _, bad := range []string{"--insecure", "--cluster-key", "--token", "--raft-tls"} {
				if strings.HasPrefix(a, bad) {
					t.Errorf("%s: command has %q", w, a)
				}
			}
		}
		joined := svc.Environment["FACTSTR_JOIN"]
		for other := range compose.Services {
			if !strings.Contains(joined, other+":7402") {
				t.Errorf("%s: FACTSTR_JOIN=%q does not name %s", w, joined, other)
			}
		}
		if !slices.Contains(svc.Command, "--node-id="+name) || !slices.Contains(svc.Command, "--advertise-addr="+name) {
			t.Errorf("%s: --node-id and --advertise-addr should be the service name, got %v", w, svc.Command)
		}
	}
}

// checkSecurity: every rendering runs authenticated and cannot start
// insecurely by accident. The cluster key and a token come from a Secret
// (required, never a literal), nothing says --insecure, the probes do not
// use the kubelet's gRPC probes (the gRPC port speaks TLS), and --raft-tls
// is not combined with the cluster key (the node refuses that).
func checkSecurity(t *testing.T, r *rendered, cwhere string, c corev1.Container, probes map[string]*corev1.Probe) {
	t.Helper()
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		if e.Name == "FACTSTR_INSECURE" || e.Name == "FACTSTR_RAFT_TLS" {
			t.Errorf("%s: %s is set", cwhere, e.Name)
		}
		if e.Name == "FACTSTR_CLUSTER_KEY" || e.Name == "FACTSTR_TOKEN" || e.Name == "FACTSTR_AUTH_FILE" {
			if e.Value != "" {
				t.Errorf("%s: %s is a literal in the manifest; take it from a Secret", cwhere, e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				if o := e.ValueFrom.SecretKeyRef.Optional; o != nil && *o {
					t.Errorf("%s: %s is optional; a missing Secret must stop the pod", cwhere, e.Name)
				}
				fromSecret[e.Name] = true
			}
		}
	}
	if !fromSecret["FACTSTR_CLUSTER_KEY"] {
		t.Errorf("%s: FACTSTR_CLUSTER_KEY does not come from a Secret (secretKeyRef)", cwhere)
	}
	if !fromSecret["FACTSTR_TOKEN"] && !fromSecret["FACTSTR_AUTH_FILE"] {
		t.Errorf("%s: no client token from a Secret (FACTSTR_TOKEN or an auth file)", cwhere)
	}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		if strings.HasPrefix(a, "--insecure") || strings.HasPrefix(a, "--raft-tls") || strings.HasPrefix(a, "--cluster-key") || strings.HasPrefix(a, "--token") {
			t.Errorf("%s: argument %q (secrets belong in a Secret; --insecure and --raft-tls do not belong at all)", cwhere, a)
		}
	}
	for name, cm := range r.configMaps {
		for _, k := range []string{"FACTSTR_INSECURE", "FACTSTR_RAFT_TLS", "FACTSTR_CLUSTER_KEY", "FACTSTR_TOKEN"} {
			if _, ok := cm.Data[k]; ok {
				t.Errorf("%s: ConfigMap %s sets %s", r.name, name, k)
			}
		}
	}
	for name, p := range probes {
		if p != nil && p.GRPC != nil {
			t.Errorf("%s: %s is a gRPC probe; the kubelet's gRPC probes cannot speak TLS, use factstr-node healthcheck", cwhere, name)
		}
	}
}
