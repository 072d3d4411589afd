package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/identity"
)

// TestSeedIntegramenteResourceAPI covers the Organizacao, Usuario, GrupoUsuario and
// TestePsicologico sections of 000_06d3a5a2ab1d88d0.txt (IntegramenteAPI), one documented
// operation after the other, as a platform administrator, an organization's own administrator
// and a psychologist of the organization would run them. Where the
// document says PUT for a rename or a deactivation, Portaria has PATCH and POST …/deactivate
// (SPEC §5).
func TestSeedIntegramenteResourceAPI(t *testing.T) {
	f := newOrgFixture(t)
	ok := func(what string, status, want int, body map[string]any) {
		t.Helper()
		if status != want {
			t.Fatalf("%s: %d %v, want %d", what, status, body, want)
		}
	}
	id := func(body map[string]any) string { return str(body["id"]) }
	items := func(body map[string]any) []any { l, _ := body["items"].([]any); return l }

	// Organizacao.
	res, org := f.as(t, "platform admin", "POST", "/api/organizations", map[string]any{"name": "Integramente"})
	ok("cria uma nova organização", res.StatusCode, 201, org)
	o := "/api/organizations/" + id(org)
	res, field := f.as(t, "platform admin", "POST", o+"/fields", map[string]any{"name": "Cargo", "type": "text"})
	ok("cria um novo campo personalizado", res.StatusCode, 201, field)
	// The organization's administrator, who runs the Usuario and GrupoUsuario sections.
	f.addUser(t, "second admin", id(org), identity.PermOrgAdmin)
	f.addUser(t, "psychologist", id(org), "results:read", "results:write")
	res, body := f.as(t, "platform admin", "GET", o, nil)
	ok("retorna os dados de uma organização", res.StatusCode, 200, body)
	res, body = f.as(t, "platform admin", "GET", "/api/organizations", nil)
	ok("retorna todas as organizações", res.StatusCode, 200, body)
	if len(items(body)) != 3 {
		t.Errorf("organizations: %v", body)
	}
	res, body = f.as(t, "platform admin", "GET", o+"/fields/"+id(field), nil)
	ok("retorna um campo personalizado", res.StatusCode, 200, body)
	res, body = f.as(t, "platform admin", "GET", o+"/fields", nil)
	ok("retorna todos os campos personalizados", res.StatusCode, 200, body)
	res, body = f.as(t, "platform admin", "PATCH", o, map[string]any{"name": "Integramente SA"})
	ok("atualiza o nome de uma organização", res.StatusCode, 200, body)
	res, body = f.as(t, "platform admin", "PATCH", o+"/fields/"+id(field), map[string]any{"name": "Cargo atual", "required": true})
	ok("atualiza os dados de um campo personalizado", res.StatusCode, 200, body)

	// Usuario: an organization administrator is created by the platform, then runs the rest.
	res, admin := f.as(t, "platform admin", "POST", o+"/users", map[string]any{"email": "gestora@integramente.test", "name": "Gestora",
		"permissions": []string{"org:admin"}, "fields": map[string]any{id(field): "Diretora"}})
	ok("cria um novo usuário vinculado a uma organização", res.StatusCode, 201, admin)
	res, user := f.as(t, "second admin", "POST", o+"/users", map[string]any{"email": "ana@integramente.test", "name": "Ana",
		"fields": map[string]any{id(field): "Analista"}})
	ok("cria um usuário (administrador da organização)", res.StatusCode, 201, user)
	u := "/api/users/" + id(user)
	res, body = f.as(t, "second admin", "GET", u, nil)
	ok("retorna os dados de um usuário", res.StatusCode, 200, body)
	res, body = f.as(t, "second admin", "GET", o+"/users", nil)
	ok("retorna os usuários de uma organização", res.StatusCode, 200, body)
	if len(items(body)) != 4 {
		t.Errorf("users of the organization: %v", body)
	}
	res, body = f.as(t, "platform admin", "GET", "/api/users?q=integramente&limit=1", nil)
	ok("retorna todos os usuários da plataforma, com filtros e paginação", res.StatusCode, 200, body)
	if len(items(body)) != 1 || body["next_cursor"] == nil {
		t.Errorf("first page of one: %v", body)
	}
	res, body = f.as(t, "second admin", "PATCH", u, map[string]any{"name": "Ana Maria", "email": "ana.maria@integramente.test",
		"fields": map[string]any{id(field): "Coordenadora"}})
	ok("atualiza os dados cadastrais", res.StatusCode, 200, body)
	if body["email"] != "ana.maria@integramente.test" || body["fields"].(map[string]any)[id(field)] != "Coordenadora" {
		t.Errorf("updated user: %v", body)
	}
	res, body = f.as(t, "second admin", "PUT", u+"/permissions", map[string]any{"permissions": []string{"groups:read", "results:read"}})
	ok("atualiza as permissões", res.StatusCode, 204, body)
	res, body = f.as(t, "second admin", "POST", u+"/password/expire", nil)
	ok("marca a senha como expirada", res.StatusCode, 204, body)
	if got, _ := f.ids.User(context.Background(), id(user)); !got.PasswordExpired {
		t.Error("the password is not marked expired")
	}

	// GrupoUsuario.
	res, group := f.as(t, "second admin", "POST", o+"/groups", map[string]any{"name": "Equipe", "description": "Primeira equipe"})
	ok("cria um novo grupo", res.StatusCode, 201, group)
	g := "/api/groups/" + id(group)
	res, body = f.as(t, "second admin", "PUT", g+"/members/"+id(user), nil)
	ok("adiciona um usuário ao grupo", res.StatusCode, 204, body)
	res, body = f.as(t, "second admin", "PUT", g+"/managers/"+id(admin), nil)
	ok("adiciona um gestor ao grupo", res.StatusCode, 204, body)
	res, body = f.as(t, "second admin", "GET", g, nil)
	ok("retorna um grupo com membros e gestores", res.StatusCode, 200, body)
	if members, _ := body["members"].([]any); len(members) != 1 {
		t.Errorf("group: %v", body)
	}
	if managers, _ := body["managers"].([]any); len(managers) != 1 {
		t.Errorf("group: %v", body)
	}
	res, body = f.as(t, "second admin", "GET", g+"/members", nil)
	ok("retorna os usuários de um grupo", res.StatusCode, 200, body)
	res, body = f.as(t, "second admin", "GET", o+"/groups", nil)
	ok("retorna os grupos de uma organização", res.StatusCode, 200, body)
	res, body = f.as(t, "second admin", "GET", "/api/users/"+id(admin)+"/managed-groups", nil)
	ok("retorna os grupos que o usuário gere", res.StatusCode, 200, body)
	if len(items(body)) != 1 {
		t.Errorf("managed groups: %v", body)
	}
	res, body = f.as(t, "second admin", "GET", u+"/groups", nil)
	ok("retorna os grupos de que o usuário é membro", res.StatusCode, 200, body)
	if len(items(body)) != 1 {
		t.Errorf("groups of the member: %v", body)
	}
	// TestePsicologico: the catalogue is the platform's, results are the organization's.
	schema := json.RawMessage(`{"type":"object","required":["total"],"properties":{"total":{"type":"integer","minimum":0}}}`)
	res, test := f.as(t, "platform admin", "POST", "/api/tests", map[string]any{"name": "Inventário", "description": "Um teste",
		"version": "1", "score_schema": schema})
	ok("cria um novo teste psicológico", res.StatusCode, 201, test)
	tp := "/api/tests/" + id(test)
	applied := f.clock.Now().UTC().Format(time.RFC3339)
	newResult := func() string {
		t.Helper()
		res, body := f.as(t, "psychologist", "POST", "/api/results", map[string]any{"user_id": id(user), "test_id": id(test),
			"group_id": id(group), "scores": json.RawMessage(`{"total":12}`), "answers": json.RawMessage(`[1,2,3]`), "applied_at": applied})
		ok("cria um novo resultado", res.StatusCode, 201, body)
		return "/api/results/" + id(body)
	}
	r1, r2 := newResult(), newResult()
	res, body = f.as(t, "psychologist", "GET", tp, nil)
	ok("retorna um teste psicológico", res.StatusCode, 200, body)
	res, body = f.as(t, "psychologist", "GET", "/api/tests", nil)
	ok("retorna todos os testes", res.StatusCode, 200, body)
	res, body = f.as(t, "psychologist", "GET", g+"/results", nil)
	ok("retorna os resultados de um grupo", res.StatusCode, 200, body)
	if len(items(body)) != 2 {
		t.Errorf("results of the group: %v", body)
	}
	res, body = f.as(t, "psychologist", "GET", u+"/results", nil)
	ok("retorna os resultados de um usuário", res.StatusCode, 200, body)
	res, body = f.as(t, "psychologist", "GET", r1, nil)
	ok("retorna um resultado", res.StatusCode, 200, body)
	res, body = f.as(t, "platform admin", "PATCH", tp, map[string]any{"description": "Revisado", "version": "1.1"})
	ok("atualiza um teste psicológico", res.StatusCode, 200, body)
	res, body = f.as(t, "psychologist", "PATCH", r1, map[string]any{"scores": json.RawMessage(`{"total":14}`)})
	ok("atualiza um resultado", res.StatusCode, 200, body)
	res, body = f.as(t, "psychologist", "PUT", r1+"/feedback-date", map[string]any{"feedback_at": applied})
	ok("define a data da devolutiva de um resultado", res.StatusCode, 204, body)
	res, body = f.as(t, "psychologist", "POST", "/api/results/feedback-date", map[string]any{
		"result_ids": []string{strings.TrimPrefix(r1, "/api/results/"), strings.TrimPrefix(r2, "/api/results/")}, "feedback_at": applied})
	ok("define a data da devolutiva de vários resultados", res.StatusCode, 204, body)
	res, body = f.as(t, "psychologist", "DELETE", r2, nil)
	ok("exclui um resultado", res.StatusCode, 204, body)
	res, body = f.as(t, "platform admin", "POST", tp+"/deactivate", nil)
	ok("desativa um teste psicológico", res.StatusCode, 204, body)

	res, body = f.as(t, "second admin", "PATCH", g, map[string]any{"name": "Equipe A", "description": "Renomeada"})
	ok("atualiza nome e descrição", res.StatusCode, 200, body)
	res, body = f.as(t, "second admin", "DELETE", g+"/members/"+id(user), nil)
	ok("remove um usuário do grupo", res.StatusCode, 204, body)
	res, body = f.as(t, "second admin", "DELETE", g+"/managers/"+id(admin), nil)
	ok("remove um gestor do grupo", res.StatusCode, 204, body)
	res, body = f.as(t, "second admin", "DELETE", g, nil)
	ok("exclusão lógica do grupo", res.StatusCode, 204, body)
	if res, _ := f.as(t, "second admin", "GET", g, nil); res.StatusCode != 404 {
		t.Errorf("a deleted group: %d", res.StatusCode)
	}

	// The rest of Usuario and Organizacao: deactivations and the permanent field delete.
	res, body = f.as(t, "second admin", "POST", u+"/deactivate", nil)
	ok("desativa um usuário", res.StatusCode, 204, body)
	res, body = f.as(t, "platform admin", "DELETE", o+"/fields/"+id(field), nil)
	ok("exclui permanentemente um campo personalizado", res.StatusCode, 204, body)
	res, body = f.as(t, "platform admin", "POST", o+"/deactivate", nil)
	ok("desativa uma organização", res.StatusCode, 204, body)
	if res, _ := f.as(t, "platform admin", "GET", o, nil); res.StatusCode != 200 {
		t.Errorf("a deactivated organization stays readable by the platform: %d", res.StatusCode)
	}
}
