package main

import (
	"io"
	"net/http/httptest"
	"testing"
)

func get(t *testing.T, path string) string {
	t.Helper()
	server := httptest.NewServer(handler())
	defer server.Close()
	res, err := server.Client().Get(server.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func TestGreeting(t *testing.T) {
	if got := get(t, "/"); got != "hello from go-web\n" {
		t.Fatalf("got %q", got)
	}
}

func TestNameBasedID(t *testing.T) {
	// uuid.NewSHA1(NameSpaceURL, "solum"): version 5, the same on every run.
	if got := get(t, "/id/solum"); len(got) != 37 || got[14] != '5' {
		t.Fatalf("got %q", got)
	}
}
