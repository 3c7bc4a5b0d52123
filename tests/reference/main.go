// The reference: Go Casbin (github.com/casbin/casbin/v2, Debian's
// golang-github-casbin-casbin-dev), answering the same questions as authzd.
//
// One JSON object per line on stdin:
//
//	{"model": "...", "policy": "...",
//	 "role_matching": {"g2": "keyMatch2"}, "domain_matching": {"g": "keyMatch"},
//	 "requests": [{"values": ["alice", "/book/1", "GET"], "extra": "g, alice, r1\n"}]}
//
// and one JSON object per line on stdout:
//
//	{"error": "", "results": [{"allowed": true, "explain": ["..."], "error": ""}]}
//
// `extra` holds policy lines for that request alone (authzd's claim roles).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	fileadapter "github.com/casbin/casbin/v2/persist/file-adapter"
	"github.com/casbin/casbin/v2/rbac"
	"github.com/casbin/casbin/v2/util"
)

type request struct {
	Values []string `json:"values"`
	Extra  string   `json:"extra"`
}

type job struct {
	Model          string            `json:"model"`
	Policy         string            `json:"policy"`
	RoleMatching   map[string]string `json:"role_matching"`
	DomainMatching map[string]string `json:"domain_matching"`
	Requests       []request         `json:"requests"`
}

type result struct {
	Allowed bool     `json:"allowed"`
	Explain []string `json:"explain"`
	Error   string   `json:"error"`
}

type answer struct {
	Error   string   `json:"error"`
	Results []result `json:"results"`
}

func function(name string) (rbac.MatchingFunc, error) {
	switch name {
	case "keyMatch":
		return util.KeyMatch, nil
	case "keyMatch2":
		return util.KeyMatch2, nil
	case "keyMatch3":
		return util.KeyMatch3, nil
	case "keyMatch4":
		return util.KeyMatch4, nil
	case "keyMatch5":
		return util.KeyMatch5, nil
	case "regexMatch":
		return util.RegexMatch, nil
	case "globMatch":
		return func(a, b string) bool { ok, _ := util.GlobMatch(a, b); return ok }, nil
	}
	return nil, fmt.Errorf("unknown function %q", name)
}

func enforcer(j *job, dir string, extra string) (e *casbin.Enforcer, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	m, err := model.NewModelFromString(j.Model)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "policy.csv")
	if err := os.WriteFile(path, []byte(j.Policy+"\n"+extra), 0o600); err != nil {
		return nil, err
	}
	e, err = casbin.NewEnforcer(m, fileadapter.NewAdapter(path))
	if err != nil {
		return nil, err
	}
	for ptype, name := range j.RoleMatching {
		fn, err := function(name)
		if err != nil {
			return nil, err
		}
		if !e.AddNamedMatchingFunc(ptype, name, fn) {
			return nil, fmt.Errorf("no role definition %q", ptype)
		}
	}
	for ptype, name := range j.DomainMatching {
		fn, err := function(name)
		if err != nil {
			return nil, err
		}
		if !e.AddNamedDomainMatchingFunc(ptype, name, fn) {
			return nil, fmt.Errorf("no role definition %q", ptype)
		}
	}
	return e, nil
}

func ask(e *casbin.Enforcer, values []string) (res result) {
	defer func() {
		if r := recover(); r != nil {
			res = result{Error: fmt.Sprintf("panic: %v", r)}
		}
	}()
	args := make([]interface{}, len(values))
	for i, v := range values {
		args[i] = v
	}
	ok, explain, err := e.EnforceEx(args...)
	if err != nil {
		return result{Error: err.Error()}
	}
	if explain == nil {
		explain = []string{}
	}
	return result{Allowed: ok, Explain: explain}
}

func run(j *job, dir string) answer {
	base, err := enforcer(j, dir, "")
	if err != nil {
		return answer{Error: err.Error()}
	}
	out := answer{Results: []result{}}
	for _, r := range j.Requests {
		e := base
		if r.Extra != "" {
			e, err = enforcer(j, dir, r.Extra)
			if err != nil {
				out.Results = append(out.Results, result{Error: err.Error()})
				continue
			}
		}
		out.Results = append(out.Results, ask(e, r.Values))
	}
	return out
}

func main() {
	dir, err := os.MkdirTemp("", "casbin-reference")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<30)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var j job
		var a answer
		if err := json.Unmarshal(in.Bytes(), &j); err != nil {
			a = answer{Error: err.Error()}
		} else {
			a = run(&j, dir)
		}
		if err := enc.Encode(a); err != nil {
			panic(err)
		}
	}
}
