// Command go-web is a small web app for the go badger: net/http and one vendored module
// (github.com/google/uuid, from Debian's golang-github-google-uuid-dev 1.3.0).
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/google/uuid"
)

// handler answers `/` with a greeting and `/id/NAME` with NAME's name-based UUID, the
// same on every run.
func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "hello from go-web")
	})
	mux.HandleFunc("/id/", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path[len("/id/"):]
		fmt.Fprintln(w, uuid.NewSHA1(uuid.NameSpaceURL, []byte(name)))
	})
	return mux
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.Printf("go-web listening on %s", port)
	log.Fatal(http.ListenAndServe(":"+port, handler()))
}
