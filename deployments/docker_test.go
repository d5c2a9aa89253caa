package deployments

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// No Docker engine runs on our machines, so these tests check what can be
// checked without one: that docker-compose parses the compose file (Debian's
// docker-compose package), and that each Dockerfile's build stage, replayed
// step by step in a scratch directory (COPY the same files, RUN the same
// commands with the same ENV), produces the binary the runtime stage copies.

var services = map[string]string{ // Dockerfile name → the port its service listens on by default
	"ingress":       "8290",
	"forwarder":     "8291",
	"catering-stub": "8080",
}

func dockerCompose(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose is not installed (apt-get install -y docker-compose): the compose file cannot be validated")
	}
	cmd := exec.Command(bin, append([]string{"-f", filepath.Join(repoRoot, "docker-compose.yml")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestCompose_Validates(t *testing.T) {
	dockerCompose(t, "config", "-q")
	dockerCompose(t, "--profile", "observability", "config", "-q")
}

// composeFile is the part of `docker-compose config` the test reads.
type composeFile struct {
	Services map[string]struct {
		Image string `yaml:"image"`
		Build struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Ports       []any             `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck map[string]any `yaml:"healthcheck"`
		Volumes     []any          `yaml:"volumes"`
		Profiles    []string       `yaml:"profiles"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestCompose_FitsTheStory(t *testing.T) {
	var c composeFile
	decodeYAML(t, dockerCompose(t, "--profile", "observability", "config"), &c)

	rabbit := c.Services["rabbitmq"]
	if !strings.HasPrefix(rabbit.Image, "rabbitmq:4") || !strings.Contains(rabbit.Image, "management") {
		t.Errorf("rabbitmq image %q, want a 4.x management image", rabbit.Image)
	}
	if len(rabbit.Healthcheck) == 0 || len(rabbit.Volumes) == 0 || len(c.Volumes) == 0 {
		t.Error("rabbitmq needs a healthcheck and a named volume (messages survive down/up)")
	}
	if fwd := c.Services["forwarder"]; len(fwd.Ports) != 0 {
		t.Errorf("forwarder publishes host ports %v: --scale forwarder=3 would clash", fwd.Ports)
	}
	if ep := c.Services["forwarder"].Environment["CATERING_SERVICE_EP"]; ep == "" {
		t.Error("forwarder has no CATERING_SERVICE_EP, as the seed sets it")
	}
	for _, svc := range []string{"ingress", "forwarder"} {
		if c.Services[svc].DependsOn["rabbitmq"].Condition != "service_healthy" {
			t.Errorf("%s does not wait for a healthy rabbitmq", svc)
		}
	}
	for name := range services {
		b := c.Services[name].Build
		if want := "deployments/" + name + ".Dockerfile"; !strings.HasSuffix(b.Dockerfile, want) {
			t.Errorf("%s builds from %q, want %s", name, b.Dockerfile, want)
		}
	}
	for _, svc := range []string{"prometheus", "grafana"} {
		if s, ok := c.Services[svc]; !ok || len(s.Profiles) == 0 || s.Profiles[0] != "observability" {
			t.Errorf("%s missing from the observability profile", svc)
		}
	}
}

// TestDockerfiles_BuildStageBuilds replays each build stage outside Docker.
func TestDockerfiles_BuildStageBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries; run without -short")
	}
	for name, port := range services {
		t.Run(name, func(t *testing.T) {
			df := parseDockerfile(t, filepath.Join(repoRoot, "deployments", name+".Dockerfile"))
			root := t.TempDir()
			env := append(os.Environ(), "GOFLAGS=-mod=readonly")
			workdir := "/"
			for _, step := range df.build {
				switch step.op {
				case "ENV":
					env = append(env, step.args...)
				case "WORKDIR":
					workdir = step.args[0]
					if err := os.MkdirAll(under(root, workdir), 0o755); err != nil {
						t.Fatal(err)
					}
				case "COPY":
					dest := step.args[len(step.args)-1]
					if !filepath.IsAbs(dest) {
						dest = filepath.Join(workdir, dest) + "/"
					}
					for _, src := range step.args[:len(step.args)-1] {
						copyInto(t, filepath.Join(repoRoot, src), under(root, dest), strings.HasSuffix(dest, "/"))
					}
				case "RUN":
					cmd := exec.Command("sh", "-c", rewritePaths(root, step.args[0]))
					cmd.Dir, cmd.Env = under(root, workdir), env
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("RUN %s (in %s): %v\n%s", step.args[0], workdir, err, out)
					}
				}
			}
			bin := under(root, df.copiedFromBuild)
			if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
				t.Fatalf("the runtime stage copies %s from the build stage, which did not produce it (%v)", df.copiedFromBuild, err)
			}
			if df.expose != port {
				t.Errorf("EXPOSE %s, but %s listens on %s by default", df.expose, name, port)
			}
			if !strings.Contains(df.runtimeImage, "nonroot") {
				t.Errorf("runtime image %q does not run as non-root", df.runtimeImage)
			}
		})
	}
}

type step struct {
	op   string
	args []string
}

type dockerfile struct {
	build           []step // the first stage's instructions
	runtimeImage    string
	copiedFromBuild string // the path COPY --from=build takes
	expose          string
}

var envPair = regexp.MustCompile(`(\w+)=(\S+)`)

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var df dockerfile
	stage := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, rest, _ := strings.Cut(line, " ")
		switch op = strings.ToUpper(op); {
		case op == "FROM":
			stage++
			if stage == 2 {
				df.runtimeImage = strings.Fields(rest)[0]
			}
		case stage == 1 && op == "ENV":
			var pairs []string
			for _, m := range envPair.FindAllStringSubmatch(rest, -1) {
				pairs = append(pairs, m[1]+"="+m[2])
			}
			df.build = append(df.build, step{op, pairs})
		case stage == 1 && op == "RUN":
			df.build = append(df.build, step{op, []string{rest}})
		case stage == 1 && (op == "COPY" || op == "WORKDIR"):
			df.build = append(df.build, step{op, strings.Fields(rest)})
		case stage == 2 && op == "COPY" && strings.HasPrefix(rest, "--from=build "):
			df.copiedFromBuild = strings.Fields(rest)[1]
		case stage == 2 && op == "EXPOSE":
			df.expose = strings.TrimSpace(rest)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(df.build) == 0 || df.copiedFromBuild == "" {
		t.Fatalf("%s: no build stage or no COPY --from=build", path)
	}
	return df
}

// under maps an absolute path of the image to the scratch directory.
func under(root, p string) string { return filepath.Join(root, filepath.FromSlash(p)) }

var absPath = regexp.MustCompile(`(^|\s|=)(/(?:src|out)\b)`)

func rewritePaths(root, cmd string) string {
	return absPath.ReplaceAllString(cmd, "${1}"+root+"${2}")
}

// copyInto copies src (a file or a directory's contents) as COPY does.
func copyInto(t *testing.T, src, dest string, destIsDir bool) {
	t.Helper()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
	if !fi.IsDir() {
		target := dest
		if destIsDir {
			target = filepath.Join(dest, filepath.Base(src))
		}
		copyFile(t, src, target)
		return
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		copyFile(t, p, filepath.Join(dest, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func decodeYAML(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse docker-compose config output: %v", err)
	}
}
