#!/usr/bin/env bash
# A full overdracht on the demo network (`make run`), every step checked: exits non-zero when a step's
# effect is not as expected. Usage: HUB=http://127.0.0.1:8080/fhir examples/handover.sh
set -euo pipefail
HUB=${HUB:-http://127.0.0.1:8080/fhir}
TOKEN_CMD=${TOKEN_CMD:-.venv/bin/hub token --as}
WV=$($TOKEN_CMD org:00023456)        # sender: Wijkverpleging Zorg Dichtbij
VH=$($TOKEN_CMD org:00056789)        # receiver: Verpleeghuis De Boomgaard
GEM=$($TOKEN_CMD org:00045678)       # the gemeente (in the client's care team)
CLIENT=$($TOKEN_CMD client:999993653)
FHIR='Content-Type: application/fhir+json'
PATCH='Content-Type: application/json-patch+json'
OUT=$(mktemp); trap 'rm -f "$OUT"' EXIT

# call EXPECTED_STATUS TOKEN METHOD URL [BODY] [CONTENT_TYPE]: the body lands in $OUT
call() {
  local want=$1 token=$2 method=$3 url=$4 body=${5:-} ctype=${6:-$FHIR} got
  if [ -n "$body" ]; then
    got=$(curl -s -o "$OUT" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $token" -H "$ctype" -d "$body" "$HUB/$url")
  else
    got=$(curl -s -o "$OUT" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $token" "$HUB/$url")
  fi
  if [ "$got" != "$want" ]; then
    echo "FAIL: $method $url: expected $want, got $got: $(head -c 600 "$OUT")" >&2
    exit 1
  fi
  echo "ok   $method $url -> $got"
}
check() { jq -e "$1" "$OUT" >/dev/null || { echo "FAIL: $2: $(head -c 600 "$OUT")" >&2; exit 1; }; echo "ok   $2"; }

call 200 "$WV" GET "Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|999993653"
PID=$(jq -r '.entry[0].resource.id' "$OUT")
call 200 "$WV" GET "Organization?identifier=http://fhir.nl/fhir/NamingSystem/ura|00023456"
SENDER=$(jq -r '.entry[0].resource.id' "$OUT")
call 200 "$WV" GET "Organization?identifier=http://fhir.nl/fhir/NamingSystem/ura|00056789"
RECEIVER=$(jq -r '.entry[0].resource.id' "$OUT")

# 1. the sender writes the advance notice (aanmeldbericht) and the Task, 'requested'
call 201 "$WV" POST Composition '{"resourceType":"Composition","status":"final","type":{"coding":[{"system":"http://loinc.org","code":"57830-2"}]},"subject":{"reference":"Patient/'"$PID"'"},"date":"2026-11-30T09:00:00+01:00","author":[{"reference":"Organization/'"$SENDER"'"}],"title":"Aanmeldbericht","section":[{"title":"Reden en gewenste datum","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Opname na vallen; gewenst 2026-12-07</div>"},"entry":[{"reference":"Patient/'"$PID"'"}]}]}'
NOTICE=$(jq -r .id "$OUT")
call 201 "$WV" POST Task '{"resourceType":"Task","status":"requested","intent":"order","code":{"coding":[{"system":"http://snomed.info/sct","code":"308292007"}]},"for":{"reference":"Patient/'"$PID"'"},"requester":{"reference":"Organization/'"$SENDER"'"},"owner":{"reference":"Organization/'"$RECEIVER"'"},"input":[{"type":{"coding":[{"system":"http://loinc.org","code":"57830-2"}]},"valueReference":{"reference":"Composition/'"$NOTICE"'"}}]}'
TASK=$(jq -r .id "$OUT")
check '.businessStatus.coding[0].code == "requested" and .lastModified == .meta.lastUpdated' "the hub keeps businessStatus and lastModified"

# 2. before accepting, the receiver sees the Task and the advance notice, not the client's record
call 200 "$VH" GET "Task/$TASK"
call 200 "$VH" GET "Composition/$NOTICE"
call 200 "$VH" GET "CarePlan?subject=Patient/$PID&_total=accurate"
check '.total == 0' "no care plan for the receiver before it accepted"
call 200 "$CLIENT" GET "Patient/$PID/\$access"
check "[.parameter[] | select(.name == \"overdracht\") | .part[] | select(.name == \"access\") | .valueString] | any(test(\"advance notice only, Task/$TASK requested\"))" "\$access: advance notice only"

# 3. another party cannot cancel it; the receiver accepts
call 409 "$GEM" PATCH "Task/$TASK" '[{"op":"replace","path":"/status","value":"cancelled"}]' "$PATCH"
check '.issue[1].diagnostics == "Allowed next states for you: none"' "the refusal names the allowed next states"
call 200 "$VH" PATCH "Task/$TASK" '[{"op":"replace","path":"/status","value":"accepted"}]' "$PATCH"

# 4. the sender attaches the nursing handoff; the receiver reads it
call 201 "$WV" POST Composition '{"resourceType":"Composition","status":"final","type":{"coding":[{"system":"http://snomed.info/sct","code":"11171000146100"}]},"subject":{"reference":"Patient/'"$PID"'"},"date":"2026-11-30T10:00:00+01:00","author":[{"reference":"Organization/'"$SENDER"'"}],"title":"Verpleegkundige overdracht","section":[{"title":"Administratieve gegevens","code":{"coding":[{"system":"http://snomed.info/sct","code":"405624007"}]},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Administratie</div>"}},{"title":"Medische context","code":{"coding":[{"system":"http://snomed.info/sct","code":"371524004"}]},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Medisch</div>"}},{"title":"Zorgplan","code":{"coding":[{"system":"http://snomed.info/sct","code":"773130005"}]},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Zorgplan</div>"}}]}'
HANDOFF=$(jq -r .id "$OUT")
call 404 "$VH" GET "Composition/$HANDOFF"
call 200 "$WV" PATCH "Task/$TASK" '[{"op":"add","path":"/input/-","value":{"type":{"coding":[{"system":"http://snomed.info/sct","code":"371535009"}]},"valueReference":{"reference":"Composition/'"$HANDOFF"'"}}}]' "$PATCH"
call 200 "$VH" GET "Composition/$HANDOFF"

# 5. admission: in-progress, then completed; the receiver is now in care of the client
call 200 "$VH" PATCH "Task/$TASK" '[{"op":"replace","path":"/status","value":"in-progress"}]' "$PATCH"
call 200 "$VH" PATCH "Task/$TASK" '[{"op":"replace","path":"/status","value":"completed"}]' "$PATCH"
check '.executionPeriod.start and .executionPeriod.end == .lastModified and .businessStatus.coding[0].code == "completed"' "executionPeriod kept right"
call 200 "$CLIENT" GET "Patient/$PID/\$access"
check "[.parameter[] | select(.name == \"organisation\") | .part[] | select(.name == \"ura\") | .valueString] | index(\"00056789\")" "\$access: the verpleeghuis is a care relation"

# 6. closed: nothing moves any more
call 409 "$WV" PATCH "Task/$TASK" '[{"op":"replace","path":"/status","value":"requested"}]' "$PATCH"
echo "handover: every step as expected"
