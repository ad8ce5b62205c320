package validate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// deployDir is deploy/, seen from deploy/k8s/validate.
const deployDir = "../.."

var scheme = runtime.NewScheme()

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
}

// strict is apimachinery's strict codec: unknown and duplicate fields,
// wrong case (sigs.k8s.io/json is case-sensitive), wrong types and unknown
// kinds are errors, all reported with their paths.
var strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// splitDocs returns the non-empty YAML documents in data.
func splitDocs(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		if isBlank(doc) {
			continue
		}
		docs = append(docs, doc)
	}
}

// isBlank reports whether a YAML document holds only comments and space.
func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && line != "---" {
			return false
		}
	}
	return true
}

// decodeDoc strictly decodes one document: kustomize's own kinds into the
// kustomize types (sigs.k8s.io/json, strict and case-sensitive), everything
// else into k8s.io/api types through the strict codec.
func decodeDoc(doc []byte) (any, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	if strings.HasPrefix(tm.APIVersion, "kustomize.config.k8s.io/") {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		var k types.Kustomization
		strictErrs, err := sigsjson.UnmarshalStrict(js, &k)
		if err != nil {
			return nil, err
		}
		if len(strictErrs) > 0 {
			return nil, fmt.Errorf("strict decoding error: %v", errors.Join(strictErrs...))
		}
		return &k, nil
	}
	obj, _, err := strict.Decode(doc, nil, nil)
	return obj, err
}

// yamlFiles lists every .yaml/.yml file under deploy/ except the compose
// file (not a Kubernetes document; compose_test.go checks it) and the
// tools modules' caches.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != deployDir {
			return filepath.SkipDir
		}
		ext := filepath.Ext(path)
		if d.IsDir() || (ext != ".yaml" && ext != ".yml") || d.Name() == "docker-compose.yml" {
			return nil
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("found only %d YAML files under deploy/: %v", len(files), files)
	}
	return files
}

// TestStrictDecodeEveryDocument decodes every YAML document under deploy/
// (base resources, overlay patches, kustomizations) strictly.
func TestStrictDecodeEveryDocument(t *testing.T) {
	for _, f := range yamlFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := splitDocs(data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
		for i, doc := range docs {
			obj, err := decodeDoc(doc)
			if err != nil {
				t.Errorf("%s (document %d): %v", rel(f), i+1, err)
				continue
			}
			t.Logf("%s: %T", rel(f), obj)
		}
	}
}

// TestStrictDecoderRejects proves the decoder is the strict one: a typo, a
// wrongly cased field and an unknown kind are all rejected (the first two
// are accepted silently by a lenient decoder).
func TestStrictDecoderRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"misspelled field": "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec:\n  replica: 3\n",
		"wrong case":       "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec:\n  Replicas: 3\n",
		"nested typo":      "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n  - {port: 1, tragetPort: 2}\n",
		"duplicate field":  "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIP: None\n  clusterIP: None\n",
		"unknown kind":     "apiVersion: apps/v1\nkind: StatefullSet\nmetadata: {name: x}\n",
		"kustomize typo":   "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresource: [a.yaml]\n",
	} {
		if _, err := decodeDoc([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: rejected: %v", name, err)
		}
	}
}

func rel(path string) string {
	if r, err := filepath.Rel(deployDir, path); err == nil {
		return "deploy/" + r
	}
	return path
}
