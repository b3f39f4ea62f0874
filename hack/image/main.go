// Command image builds the operator's container image without a container engine, a daemon or root: from the
// static manager binaries of each platform and a small base layer it writes an OCI image layout (one index with
// every platform) and a docker-archive tarball per platform. `make image` runs it.
//
// The base layer holds only what a static Go binary reads from its file system: /etc/passwd and /etc/group
// with the nonroot user 65532, the CA roots of Mozilla's NSS store (golang.org/x/crypto/x509roots/fallback,
// pinned by this module's go.mod) at /etc/ssl/certs/ca-certificates.crt, and Go's own time zone database
// (lib/time/zoneinfo.zip of the Go that runs this program) found through ZONEINFO. Every file has a fixed owner
// and modification time (-epoch, the commit time in the Makefile), so the same commit and Go version give the
// same image digest.
//
// With -rootfs DIR it only writes the base layer's files into DIR, for the Dockerfile.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image's user: distroless's nonroot, which the Deployment's runAsNonRoot accepts.
const (
	uid          = 65532
	zoneinfoPath = "/usr/share/zoneinfo.zip"
)

// file is one regular file of a layer.
type file struct {
	path string
	mode int64
	data []byte
}

func main() {
	var (
		out, rootfs, tag, source, version, revision string
		zoneinfo                                    string
		epoch                                       int64
		managers                                    multiFlag
	)
	flag.StringVar(&out, "out", "bin/image", "Directory for the OCI layout (oci/) and the docker-archive tarballs.")
	flag.StringVar(&rootfs, "rootfs", "", "Only write the base layer's files into this directory (for the Dockerfile).")
	flag.StringVar(&tag, "tag", "ghcr.io/asynctask-operator/asynctask-operator:latest", "The image reference.")
	flag.StringVar(&source, "source", "https://github.com/asynctask-operator/asynctask-operator", "org.opencontainers.image.source.")
	flag.StringVar(&version, "version", "dev", "org.opencontainers.image.version.")
	flag.StringVar(&revision, "revision", "unknown", "org.opencontainers.image.revision (the commit).")
	flag.Int64Var(&epoch, "epoch", 0, "Modification and creation time of everything in the image, in Unix seconds.")
	flag.StringVar(&zoneinfo, "zoneinfo", filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip"), "Go's time zone database.")
	flag.Var(&managers, "manager", "os/arch=path of a static manager binary; repeat for each platform.")
	flag.Parse()
	if err := run(out, rootfs, tag, source, version, revision, zoneinfo, time.Unix(epoch, 0).UTC(), managers); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(out, rootfs, tag, source, version, revision, zoneinfo string, created time.Time, managers multiFlag) error {
	base, err := baseFiles(zoneinfo)
	if err != nil {
		return err
	}
	if rootfs != "" {
		return writeDir(rootfs, base)
	}
	if len(managers) == 0 {
		return errors.New("no -manager os/arch=path given")
	}
	ref, err := name.ParseReference(tag)
	if err != nil {
		return err
	}
	baseLayer, err := layer(base, created)
	if err != nil {
		return err
	}
	index := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, m := range managers {
		platform, binary, _ := strings.Cut(m, "=")
		goos, arch, ok := strings.Cut(platform, "/")
		if !ok || binary == "" {
			return fmt.Errorf("-manager %q: want os/arch=path", m)
		}
		data, err := os.ReadFile(binary)
		if err != nil {
			return err
		}
		img, err := image(baseLayer, data, goos, arch, created, map[string]string{
			"org.opencontainers.image.source":   source,
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.revision": revision,
			"org.opencontainers.image.created":  created.Format(time.RFC3339),
			"org.opencontainers.image.title":    "asynctask-operator",
		})
		if err != nil {
			return err
		}
		p := &v1.Platform{OS: goos, Architecture: arch}
		if arch == "arm64" {
			p.Variant = "v8"
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
		archive := filepath.Join(out, fmt.Sprintf("asynctask-operator-%s-%s.tar", goos, arch))
		if err := tarball.WriteToFile(archive, ref, img); err != nil {
			return fmt.Errorf("writing %s: %w", archive, err)
		}
		digest, _ := img.Digest()
		fmt.Printf("%s/%s %s %s\n", goos, arch, digest, archive)
	}
	dir := filepath.Join(out, "oci")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendIndex(index, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.Identifier(),
		"io.containerd.image.name":          ref.Name(),
	})); err != nil {
		return err
	}
	digest, _ := index.Digest()
	fmt.Printf("index %s %s\n", digest, dir)
	return nil
}

// image is one platform's image: the base layer, then /manager.
func image(base v1.Layer, manager []byte, goos, arch string, created time.Time, labels map[string]string) (v1.Image, error) {
	managerLayer, err := layer([]file{{path: "manager", mode: 0o755, data: manager}}, created)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "hack/image: passwd, group, CA roots, zoneinfo", Comment: "base"}},
		mutate.Addendum{Layer: managerLayer, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "hack/image: /manager (CGO_ENABLED=0 go build ./cmd)"}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = goos, arch, v1.Time{Time: created}
	if arch == "arm64" {
		cfg.Variant = "v8"
	}
	cfg.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cfg.Config.Entrypoint = []string{"/manager"}
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"ZONEINFO=" + zoneinfoPath}
	cfg.Config.Labels = labels
	return mutate.ConfigFile(img, cfg)
}

// baseFiles are the files of the base layer.
func baseFiles(zoneinfoFile string) ([]file, error) {
	var roots bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue // a distrust-after date cannot be written into a PEM file: leave such roots out
		}
		if _, err := x509.ParseCertificate(root.Certificate); err != nil {
			return nil, err
		}
		if err := pem.Encode(&roots, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, err
		}
	}
	zoneinfo, err := os.ReadFile(zoneinfoFile)
	if err != nil {
		return nil, fmt.Errorf("Go's time zone database: %w", err)
	}
	return []file{
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: roots.Bytes()},
		{path: strings.TrimPrefix(zoneinfoPath, "/"), mode: 0o644, data: zoneinfo},
	}, nil
}

// layer is a gzipped tar of files and their parent directories, owned by root, all stamped with created.
func layer(files []file, created time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	for _, f := range files {
		var parents []string
		for dir := path.Dir(f.path); dir != "."; dir = path.Dir(dir) {
			parents = append([]string{dir}, parents...)
		}
		for _, dir := range parents {
			if dirs[dir] {
				continue
			}
			dirs[dir] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: created, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: f.mode, Size: int64(len(f.data)), ModTime: created, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// writeDir writes files under dir.
func writeDir(dir string, files []file) error {
	for _, f := range files {
		target := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, f.data, os.FileMode(f.mode)); err != nil {
			return err
		}
	}
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
