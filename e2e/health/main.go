// health-check reads Kubernetes objects the way Argo CD and Flux do, with their own
// libraries, so that the e2e tests can assert what those tools would show for Herald's
// status instead of what we believe they show:
//
//   - Argo CD: a resource health Lua script run as Argo CD's util/lua runs one
//     (github.com/yuin/gopher-lua; only the package, base and table libraries and a
//     safe os (time only) are opened, the object is the global `obj`, decoded as
//     Argo CD decodes it, and the returned table's status must be one of Argo CD's
//     health codes, else Unknown "Lua returned an invalid health status"; one second
//     of run time at most).
//   - kstatus: sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, what Flux's
//     `wait: true` and `kubectl wait`-style readers use.
//
// Usage: health-check SCRIPT.lua < objects.json, where objects.json is a JSON array of
// objects (or a List with items). Output on stdout, one entry per object in order:
//
//	[{"name": "...", "kind": "...", "argocd": {"status": "...", "message": "..."},
//	  "kstatus": {"status": "...", "message": "..."}}, ...]
//
// Exit 2 on unreadable input or a script error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type result struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`
	ArgoCD  verdict `json:"argocd"`
	KStatus verdict `json:"kstatus"`
}

// Argo CD's health codes (gitops-engine pkg/health HealthStatusCode).
var validHealth = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

// decodeValue is Argo CD's util/lua decodeValue: JSON values to Lua values.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

func osTime(l *lua.LState) int {
	l.Push(lua.LNumber(time.Now().Unix()))
	return 1
}

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.OsLibName, map[string]lua.LGFunction{"time": osTime}))
	return 1
}

func argocd(obj *unstructured.Unstructured, script string) (verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			return verdict{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", decodeValue(l, obj.Object))
	if err := l.DoString(script); err != nil {
		return verdict{}, err
	}
	ret := l.Get(-1)
	switch t := ret.(type) {
	case *lua.LTable:
		st, _ := t.RawGetString("status").(lua.LString)
		msg, _ := t.RawGetString("message").(lua.LString)
		if !validHealth[string(st)] {
			return verdict{"Unknown", "Lua returned an invalid health status"}, nil
		}
		return verdict{string(st), string(msg)}, nil
	case *lua.LNilType:
		return verdict{}, nil
	}
	return verdict{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "health-check: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: health-check SCRIPT.lua < objects.json")
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read stdin: %v", err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(input, &raw); err != nil {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err2 := json.Unmarshal(input, &list); err2 != nil {
			fail("stdin is neither a JSON array nor a List: %v", err)
		}
		raw = list.Items
	}
	out := []result{}
	for i, r := range raw {
		obj := &unstructured.Unstructured{}
		// The apimachinery decoder, as Argo CD's and kstatus' callers get objects:
		// integers are int64.
		if err := obj.UnmarshalJSON(r); err != nil {
			fail("object %d: %v", i, err)
		}
		a, err := argocd(obj, string(script))
		if err != nil {
			fail("%s %s: Lua: %v", obj.GetKind(), obj.GetName(), err)
		}
		k, err := status.Compute(obj)
		if err != nil {
			fail("%s %s: kstatus: %v", obj.GetKind(), obj.GetName(), err)
		}
		out = append(out, result{
			Name:    obj.GetName(),
			Kind:    obj.GetKind(),
			ArgoCD:  a,
			KStatus: verdict{string(k.Status), k.Message},
		})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fail("%v", err)
	}
}
