// image-check inspects the OCI image layout `make image` writes (target/image/) with
// go-containerregistry, the library crane is built on, and fails unless the image is
// what docs and chart promise: one linux image whose config runs
// /usr/local/bin/NAME as 65532:65532 (with cmd CMD; "-" for none), whose files are the
// binary and the CA certificates and nothing else (no shell, no package manager).
//
// Usage: image-check DIR [NAME [CMD]] (default: herald run). Prints the config and file
// list; exit 1 naming what is wrong.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "image-check: "+format+"\n", args...)
	os.Exit(1)
}

// static: the binary must run on an image with no libc and no loader: an ELF
// executable without an interpreter (PT_INTERP) or needed shared libraries.
func static(bin string, r io.Reader) []string {
	data, err := io.ReadAll(r)
	if err != nil {
		return []string{fmt.Sprintf("read %s: %v", bin, err)}
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return []string{fmt.Sprintf("%s is not an ELF executable: %v", bin, err)}
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return []string{bin + " is dynamically linked (has an interpreter): build it for musl"}
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return []string{fmt.Sprintf("%s needs shared libraries %v", bin, libs)}
	}
	return nil
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 4 {
		fail("usage: image-check DIR [NAME [CMD]]")
	}
	binName, wantCmd := "herald", "run"
	if len(os.Args) > 2 {
		binName, wantCmd = os.Args[2], "-"
	}
	if len(os.Args) > 3 {
		wantCmd = os.Args[3]
	}
	if wantCmd == "-" {
		wantCmd = ""
	}
	bin := "/usr/local/bin/" + binName
	p, err := layout.FromPath(os.Args[1])
	if err != nil {
		fail("%s is not an OCI image layout: %v", os.Args[1], err)
	}
	index, err := p.ImageIndex()
	if err != nil {
		fail("%v", err)
	}
	m, err := index.IndexManifest()
	if err != nil {
		fail("%v", err)
	}
	if len(m.Manifests) != 1 {
		fail("want one image in the layout, found %d", len(m.Manifests))
	}
	img, err := index.Image(m.Manifests[0].Digest)
	if err != nil {
		fail("%v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		fail("%v", err)
	}
	var problems []string
	if cf.OS != "linux" {
		problems = append(problems, fmt.Sprintf("os %q, want linux", cf.OS))
	}
	if cf.Config.User != "65532:65532" {
		problems = append(problems, fmt.Sprintf("user %q, want 65532:65532", cf.Config.User))
	}
	if strings.Join(cf.Config.Entrypoint, " ") != bin {
		problems = append(problems, fmt.Sprintf("entrypoint %q, want [%s]", cf.Config.Entrypoint, bin))
	}
	if strings.Join(cf.Config.Cmd, " ") != wantCmd {
		problems = append(problems, fmt.Sprintf("cmd %q, want [%s]", cf.Config.Cmd, wantCmd))
	}
	layers, err := img.Layers()
	if err != nil {
		fail("%v", err)
	}
	var files []string
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			fail("%v", err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				fail("layer: %v", err)
			}
			name := "/" + strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
			if h.Typeflag == tar.TypeDir {
				continue
			}
			files = append(files, name)
			if h.Uid != 0 || h.Gid != 0 {
				problems = append(problems, fmt.Sprintf("%s owned by %d:%d, want root (read-only to 65532)", name, h.Uid, h.Gid))
			}
			if name == bin {
				if h.Mode&0o111 == 0 {
					problems = append(problems, bin+" is not executable")
				}
				problems = append(problems, static(bin, tr)...)
			}
		}
		rc.Close()
	}
	sort.Strings(files)
	want := []string{"/etc/ssl/certs/ca-certificates.crt", bin}
	if strings.Join(files, ",") != strings.Join(want, ",") {
		problems = append(problems, fmt.Sprintf("files %v, want exactly %v (no shell, nothing else)", files, want))
	}
	fmt.Printf("user %s, entrypoint %v, cmd %v, files %v\n", cf.Config.User, cf.Config.Entrypoint, cf.Config.Cmd, files)
	if len(problems) > 0 {
		fail("%s", strings.Join(problems, "; "))
	}
}
