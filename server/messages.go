package server

import (
	"net/http"
	"strconv"
	"strings"
)

// Languages of the API's messages (SPEC §5), as Content-Language values.
const (
	langEnglish    = "en"
	langPortuguese = "pt-BR"
)

// problemTitles is the generic title of every problem code. A call site may give a more precise
// English title; in Portuguese it is then translated through ptMessages, or falls back to the
// code's title here. messages_test.go fails when a code used in the package is missing.
var problemTitles = map[string]struct{ en, pt string }{
	"unsupported_media_type": {"The request body must be JSON (Content-Type: application/json).", "O corpo da requisição deve ser JSON (Content-Type: application/json)."},
	"body_too_large":         {"The request body is too large.", "O corpo da requisição é grande demais."},
	"invalid_json":           {"The request body is not valid JSON for this endpoint.", "O corpo da requisição não é um JSON válido para este endpoint."},
	"unknown_field":          {"The request body has a field this endpoint does not accept.", "O corpo da requisição tem um campo que este endpoint não aceita."},
	"last_admin":             {"The organization must keep an active administrator.", "A organização precisa manter um administrador ativo."},
	"csrf":                   {"The request did not come from an allowed origin.", "A requisição não veio de uma origem permitida."},
	"invalid_credentials":    {"The credentials are wrong.", "As credenciais estão incorretas."},
	"mfa_required":           {"A second factor is required.", "É necessário um segundo fator de autenticação."},
	"invalid_otp":            {"The code is wrong or was already used.", "O código está incorreto ou já foi usado."},
	"invalid_token":          {"The token is invalid, expired or revoked.", "O token é inválido, expirou ou foi revogado."},
	"too_many_attempts":      {"Too many failed attempts; retry later.", "Muitas tentativas malsucedidas; tente novamente mais tarde."},
	"password_policy":        {"The password does not follow the password rules.", "A senha não segue as regras de senha."},
	"password_expired":       {"The password has expired and must be changed.", "A senha expirou e precisa ser trocada."},
	"not_found":              {"The resource does not exist.", "O recurso não existe."},
	"method_not_allowed":     {"The resource does not accept this method.", "O recurso não aceita este método."},
	"forbidden":              {"You are not allowed to do this.", "Você não tem permissão para fazer isto."},
	"conflict":               {"The resource already exists.", "O recurso já existe."},
	"validation_failed":      {"The request has invalid fields.", "A requisição tem campos inválidos."},
	"unavailable":            {"The service is temporarily unavailable.", "O serviço está temporariamente indisponível."},
	"internal":               {"Internal error.", "Erro interno."},
	"user_token_required":    {"This endpoint needs a user's access token.", "Este endpoint exige o token de acesso de um usuário."},
	"unauthenticated":        {"An access token is required.", "É necessário um token de acesso."},
	"signup_disabled":        {"Sign-up is not enabled.", "O cadastro não está habilitado."},
	"email_taken":            {"The e-mail address is already in use.", "O endereço de e-mail já está em uso."},
}

// ptMessages translates the English titles, details and field messages the server writes. A %s
// stands for a value kept as is (a field name, a number, a quoted key) unless the value is
// itself an entry without %s (such as "a string"). Messages without an entry stay in English.
var ptMessages = map[string]string{
	// Titles more precise than their code's.
	"The e-mail or password is wrong.":                  "O e-mail ou a senha estão incorretos.",
	"The current password is wrong.":                    "A senha atual está incorreta.",
	"The password is wrong.":                            "A senha está incorreta.",
	"The access token is invalid, expired or revoked.":  "O token de acesso é inválido, expirou ou foi revogado.",
	"The session has ended; log in again.":              "A sessão terminou; entre novamente.",
	"The link is invalid, expired or was already used.": "O link é inválido, expirou ou já foi usado.",
	"There is no session to refresh.":                   "Não há sessão para renovar.",

	// Details of decodeJSON.
	"the body is empty":                                         "o corpo está vazio",
	"the body could not be read":                                "não foi possível ler o corpo",
	"the body must be at most %s bytes":                         "o corpo deve ter no máximo %s bytes",
	"content codings are not accepted":                          "codificações de conteúdo não são aceitas",
	"the Content-Type header must be application/json":          "o cabeçalho Content-Type deve ser application/json",
	"the only Content-Type parameter accepted is charset=utf-8": "o único parâmetro de Content-Type aceito é charset=utf-8",
	"the body must not start with a byte order mark":            "o corpo não deve começar com uma marca de ordem de bytes (BOM)",
	"the body is not valid UTF-8":                               "o corpo não é UTF-8 válido",
	"the body has a \\u escape of a lone UTF-16 surrogate":      "o corpo tem um escape \\u de um substituto UTF-16 isolado",
	"the body must be a JSON object, not an array":              "o corpo deve ser um objeto JSON, não um array",
	"the body must be a JSON object":                            "o corpo deve ser um objeto JSON",
	"the body is nested more than %s levels deep":               "o corpo tem mais de %s níveis de aninhamento",
	"the body has data after the JSON object":                   "o corpo tem dados depois do objeto JSON",
	"the body is not valid JSON at byte %s":                     "o corpo não é um JSON válido no byte %s",
	"the body is not valid JSON":                                "o corpo não é um JSON válido",
	"the body has a value of the wrong format":                  "o corpo tem um valor em formato errado",
	"duplicate key %s":                                          "chave %s duplicada",
	"key %s must be written %s":                                 "a chave %s deve ser escrita %s",
	"unknown field %s":                                          "campo desconhecido %s",
	"the body must be %s":                                       "o corpo deve ser %s",
	"the value of %s must be %s":                                "o valor de %s deve ser %s",
	"a string":                                                  "um texto",
	"true or false":                                             "true ou false",
	"a whole number in range":                                   "um número inteiro dentro do limite",
	"a non-negative whole number in range":                      "um número inteiro não negativo dentro do limite",
	"a number in range":                                         "um número dentro do limite",
	"a base64 string":                                           "um texto em base64",
	"an array":                                                  "um array",
	"an object":                                                 "um objeto",
	"another type of value":                                     "outro tipo de valor",

	// Details of checkOrigin.
	"the Origin header is not an allowed origin":                      "o cabeçalho Origin não é uma origem permitida",
	"the Referer header is not from an allowed origin":                "o cabeçalho Referer não é de uma origem permitida",
	"cross-site requests cannot change state":                         "requisições entre sites não podem alterar estado",
	"a browser request that changes state must send an Origin header": "uma requisição de navegador que altera estado deve enviar o cabeçalho Origin",

	// Field messages of the server; they complete a sentence that starts with the field's name.
	"is required":                                    "é obrigatório",
	"must equal new_password":                        "deve ser igual a new_password",
	"must differ from the current password":          "deve ser diferente da senha atual",
	"send mfa_token and one of otp or recovery_code": "envie mfa_token e um entre otp ou recovery_code",

	// Field messages of identity.ValidationError.
	"must be a UUID":                    "deve ser um UUID",
	"must be valid UTF-8":               "deve ser UTF-8 válido",
	"is not a cursor of this list":      "não é um cursor desta lista",
	"is not valid":                      "não é válido",
	"must be between 1 and %s":          "deve estar entre 1 e %s",
	"must not be blank":                 "não pode ficar em branco",
	"must be at most %s characters":     "deve ter no máximo %s caracteres",
	"must be at least %s characters":    "deve ter pelo menos %s caracteres",
	"must be at most %s bytes":          "deve ter no máximo %s bytes",
	"must be at most %s":                "deve ser no máximo %s",
	"must not be negative":              "não pode ser negativo",
	"must be a whole number of seconds": "deve ser um número inteiro de segundos",
	"must not contain control or bidirectional formatting characters": "não pode conter caracteres de controle nem de formatação bidirecional",
	"must include at least one grant":                                 "deve incluir pelo menos um grant",
	"contains unknown grant %s":                                       "contém o grant desconhecido %s",
	"lists %s twice":                                                  "lista %s duas vezes",
	"must not include %s for a public client":                         "não pode incluir %s para um cliente público",
	"contains invalid scope %s":                                       "contém o escopo inválido %s",
	"must not be the e-mail address":                                  "não pode ser o endereço de e-mail",
	"is too common: it appears in lists of leaked passwords":          "é comum demais: aparece em listas de senhas vazadas",
	"must not be one character repeated":                              "não pode ser um único caractere repetido",
	"must be a plain e-mail address such as name@example.com":         "deve ser um endereço de e-mail simples, como nome@example.com",
	"contains unknown permission %s":                                  "contém a permissão desconhecida %s",
	"may include %s only for a user of an organization":               "só pode incluir %s para um usuário de uma organização",
	"does not name an existing organization":                          "não indica uma organização existente",
	"names a deactivated organization":                                "indica uma organização desativada",
	"names a deactivated user":                                        "indica um usuário desativado",
	// Custom fields and user administration.
	"are only for choice fields":                             "são só para campos de escolha",
	"are only for users of an organization":                  "são só para usuários de uma organização",
	"cannot be added: an organization has at most %s fields": "não pode ser adicionado: uma organização tem no máximo %s campos",
	"filter only the users of one organization":              "filtram só os usuários de uma organização",
	"is not a field of this organization":                    "não é um campo desta organização",
	"is not a known permission":                              "não é uma permissão conhecida",
	"must be a JSON value":                                   "deve ser um valor JSON",
	"must be a date such as 2026-03-01":                      "deve ser uma data como 2026-03-01",
	"must be a finite number":                                "deve ser um número finito",
	"must be a string":                                       "deve ser um texto",
	"must be an organization ID":                             "deve ser o ID de uma organização",
	"must be one of %s":                                      "deve ser um de %s",
	"must be one of the field's options":                     "deve ser uma das opções do campo",
	"must be text of at most %s characters without control or bidirectional formatting characters": "deve ser um texto de no máximo %s caracteres, sem caracteres de controle nem de formatação bidirecional",
	"must be text without control or bidirectional formatting characters":                          "deve ser um texto sem caracteres de controle nem de formatação bidirecional",
	"must be true or false":            "deve ser true ou false",
	"must keep the existing choice %s": "deve manter a opção existente %s",
	"must list at least one choice":    "deve listar pelo menos uma opção",
	"must list at most %s choices":     "deve listar no máximo %s opções",
	"must not contain a blank choice":  "não pode conter uma opção em branco",
	"must be a list of permissions":    "deve ser uma lista de permissões",

	// Field messages of assessment.ValidationError: tests, results, feedback dates.
	"must be an id":                                                     "deve ser um id",
	"must not be in the future":                                         "não pode estar no futuro",
	"does not name an active user of the organization":                  "não indica um usuário ativo da organização",
	"does not name a group of the organization the user is a member of": "não indica um grupo da organização do qual o usuário seja membro",
	"does not name an active test":                                      "não indica um teste ativo",
	"does not name an existing test":                                    "não indica um teste existente",
	"must name at least one result":                                     "deve indicar pelo menos um resultado",
	"must name at most %s results":                                      "deve indicar no máximo %s resultados",
	"includes %s, which is not an id":                                   "inclui %s, que não é um id",
	"includes %s, which names no result":                                "inclui %s, que não indica nenhum resultado",
	"does not match the test's schema %s":                               "não corresponde ao esquema do teste %s",
	"must be one valid JSON document":                                   "deve ser um único documento JSON válido",
	"must declare no other dialect than %s":                             "não pode declarar outro dialeto além de %s",
	"is not a schema: %s":                                               "não é um esquema: %s",
	"is not a valid JSON Schema: %s":                                    "não é um JSON Schema válido: %s",
}

// preferredLanguage picks the language of the answer from Accept-Language (RFC 9110 §12.5.4):
// Brazilian Portuguese when a pt tag has the highest weight, English otherwise (also for `*`,
// absent or malformed headers). Ties go to the tag listed first.
func preferredLanguage(r *http.Request) string {
	best, bestQ := langEnglish, -1.0
	for _, header := range r.Header.Values("Accept-Language") {
		for item := range strings.SplitSeq(header, ",") {
			tag, params, _ := strings.Cut(item, ";")
			tag = strings.TrimSpace(tag)
			q, ok := qValue(params)
			if !ok || q == 0 || q <= bestQ {
				continue
			}
			primary, _, _ := strings.Cut(tag, "-")
			switch {
			case strings.EqualFold(primary, "pt"):
				best, bestQ = langPortuguese, q
			case strings.EqualFold(primary, "en"), tag == "*":
				best, bestQ = langEnglish, q
			}
		}
	}
	return best
}

// qValue reads the weight of one Accept-Language item ("q=0.8"; 1 when absent). A malformed
// weight makes the item invalid rather than the whole header.
func qValue(params string) (float64, bool) {
	params = strings.TrimSpace(params)
	if params == "" {
		return 1, true
	}
	name, value, ok := strings.Cut(params, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
		return 0, false
	}
	value = strings.TrimSpace(value)
	// RFC 9110 §12.4.2: 0 to 1 with at most three decimals.
	if len(value) == 0 || len(value) > 5 || (value[0] != '0' && value[0] != '1') {
		return 0, false
	}
	q, err := strconv.ParseFloat(value, 64)
	if err != nil || q < 0 || q > 1 {
		return 0, false
	}
	return q, true
}

// localize writes p's title, detail and field messages in lang. English keeps the call site's
// words. p's Errors slice is replaced, never written through, so a shared problem stays intact.
func localize(p *problem, lang string) {
	titles, known := problemTitles[p.Code]
	if lang != langPortuguese {
		if p.Title == "" && known {
			p.Title = titles.en
		}
		return
	}
	if t, ok := translate(p.Title); ok {
		p.Title = t
	} else if known {
		p.Title = titles.pt
	}
	if t, ok := translate(p.Detail); ok {
		p.Detail = t
	}
	if len(p.Errors) > 0 {
		errs := make([]fieldError, len(p.Errors))
		for i, fe := range p.Errors {
			if t, ok := translate(fe.Message); ok {
				fe.Message = t
			}
			errs[i] = fe
		}
		p.Errors = errs
	}
}

// translate finds the Portuguese of an English message: an exact entry, or else the entry with
// %s whose fixed text covers most of the message. The values standing for %s are translated
// when they are entries themselves.
func translate(en string) (string, bool) {
	if en == "" {
		return "", false
	}
	if pt, ok := ptMessages[en]; ok && !strings.Contains(en, "%s") {
		return pt, true
	}
	var (
		best     string
		bestArgs []string
		bestLen  = -1
	)
	for tmpl := range ptMessages {
		if !strings.Contains(tmpl, "%s") {
			continue
		}
		args, ok := matchTemplate(tmpl, en)
		if fixed := len(tmpl) - 2*len(args); ok && (fixed > bestLen || fixed == bestLen && tmpl < best) {
			best, bestArgs, bestLen = tmpl, args, fixed
		}
	}
	if bestLen < 0 {
		return "", false
	}
	out := ptMessages[best]
	for _, a := range bestArgs {
		if t, ok := ptMessages[a]; ok && !strings.Contains(a, "%s") {
			a = t
		}
		out = strings.Replace(out, "%s", a, 1)
	}
	return out, true
}

// matchTemplate matches s against tmpl, whose %s each stand for a non-empty value, and returns
// the values in order. Each value ends at the first place the following fixed text occurs.
func matchTemplate(tmpl, s string) ([]string, bool) {
	parts := strings.Split(tmpl, "%s")
	if !strings.HasPrefix(s, parts[0]) {
		return nil, false
	}
	rest := s[len(parts[0]):]
	args := make([]string, 0, len(parts)-1)
	for i, lit := range parts[1:] {
		var idx int
		if i == len(parts)-2 {
			if !strings.HasSuffix(rest, lit) {
				return nil, false
			}
			idx = len(rest) - len(lit)
		} else {
			idx = strings.Index(rest[min(1, len(rest)):], lit) + 1
			if idx <= 0 {
				return nil, false
			}
		}
		if idx <= 0 {
			return nil, false
		}
		args = append(args, rest[:idx])
		rest = rest[idx+len(lit):]
	}
	return args, true
}
