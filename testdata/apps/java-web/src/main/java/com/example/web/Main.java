package com.example.web;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

/** A small web app on the JDK's own HTTP server: a greeting at /, a health check at /health. */
public final class Main {
    private Main() {}

    /** The status and body for a request path and its query string (null when none). */
    static Object[] answer(String path, String query) {
        if (path.equals("/")) {
            String name = "java";
            if (query != null && query.startsWith("name=")) {
                name = query.substring("name=".length());
            }
            return new Object[] {200, Greeter.hello(name) + "\n"};
        }
        if (path.equals("/health")) {
            return new Object[] {200, "ok\n"};
        }
        return new Object[] {404, "not found\n"};
    }

    private static void handle(HttpExchange exchange) throws IOException {
        Object[] answer = answer(exchange.getRequestURI().getPath(), exchange.getRequestURI().getQuery());
        byte[] body = ((String) answer[1]).getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        exchange.sendResponseHeaders((Integer) answer[0], body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 0);
        server.createContext("/", Main::handle);
        server.start();
        System.out.println("listening on " + port);
    }
}
