/*
 * loop.c: the story of generate.c, from a loop of the caller's own: llama2_encode() once,
 * then llama2_forward(), llama2_sample() and llama2_decode() at every position. Prints the
 * same text as generate.c for the same arguments; a caller can step in between (stop on a
 * word, change logits, stream tokens elsewhere).
 *
 *   loop MODEL [-z TOKENIZER] [-t TEMPERATURE] [-p TOP_P] [-s SEED] [-n STEPS] [-i PROMPT]
 *
 * As in generate.c, a GGUF MODEL brings its own tokenizer (-z overrides it).
 *
 * This one keeps every buffer in fixed-size static arrays, as firmware would, sized for
 * models up to stories260K's shape (its state for the full 512 positions is 169,271 floats).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama2.h"

enum {
    MAX_FILE_WORDS = 1 << 20, /* 4 MiB per file */
    MAX_VOCAB = 512,
    MAX_STATE = 169311, /* llama2_model_buffer_sizes(stories260K, 512).state */
    MAX_PROMPT = 1024,
    MAX_LAYERS = 8
};

/* Static caller memory; `uint32_t` storage keeps the model bytes 4-byte aligned. */
static uint32_t model_words[MAX_FILE_WORDS];
static uint32_t tokenizer_words[MAX_FILE_WORDS];
static llama2_layer layers[MAX_LAYERS]; /* a GGUF model's layer table */
static uint32_t index_buffer[2 * MAX_VOCAB];
static float activations[MAX_STATE];
static llama2_prob_index scratch[MAX_VOCAB];
/* llama2_prompt_tokens_len(MAX_PROMPT): the tokens and the encoder's scratch. */
static uint32_t prompt_tokens[7 * MAX_PROMPT + 15];

/* Reads a whole file into `words`; returns its length in bytes, or 0 on failure. */
static size_t read_file(const char *path, uint32_t *words) {
    size_t len;
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        perror(path);
        return 0;
    }
    len = fread(words, 1, sizeof(uint32_t) * MAX_FILE_WORDS, file);
    if (ferror(file) || !feof(file)) {
        fprintf(stderr, "%s: cannot read it, or it is larger than %u bytes\n", path,
                (unsigned)(sizeof(uint32_t) * MAX_FILE_WORDS));
        len = 0;
    }
    fclose(file);
    return len;
}

static int write_piece(const char *piece, size_t len, void *user) {
    return fwrite(piece, 1, len, (FILE *)user) == len ? 0 : 1;
}

/* Stops with a message when `status` is an error. */
static void check(llama2_status status, const char *what) {
    if (status != LLAMA2_OK) {
        fprintf(stderr, "loop: %s: %s\n", what, llama2_error_message(status));
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *tokenizer_path = NULL, *prompt = "";
    llama2_sampling settings = {1.0f, 0.9f, 0};
    long requested = 256;
    size_t model_len, tokenizer_len = 0, steps, n_prompt, pos, logits_len;
    llama2_model model;
    llama2_tokenizer tokenizer;
    llama2_state state;
    llama2_sampler sampler;
    llama2_text text;
    llama2_config config;
    llama2_vocab vocab;
    llama2_buffer_sizes sizes;
    uint32_t token, next;
    float *logits;
    int i;

    if (argc < 2) {
        fprintf(stderr, "usage: loop MODEL [-z TOKENIZER] [-t T] [-p P] [-s SEED] [-n STEPS] [-i PROMPT]\n");
        return 2;
    }
    for (i = 2; i + 1 < argc; i += 2) {
        switch (argv[i][1]) {
        case 'z': tokenizer_path = argv[i + 1]; break;
        case 't': settings.temperature = strtof(argv[i + 1], NULL); break;
        case 'p': settings.top_p = strtof(argv[i + 1], NULL); break;
        case 's': settings.seed = strtoull(argv[i + 1], NULL, 10); break;
        case 'n': requested = strtol(argv[i + 1], NULL, 10); break;
        case 'i': prompt = argv[i + 1]; break;
        default: fprintf(stderr, "loop: unknown flag %s\n", argv[i]); return 2;
        }
    }
    if (settings.seed == 0) {
        settings.seed = (uint64_t)time(NULL);
    }
    if (strlen(prompt) > MAX_PROMPT) {
        fprintf(stderr, "loop: the prompt is longer than %d bytes\n", MAX_PROMPT);
        return 1;
    }
    if ((model_len = read_file(argv[1], model_words)) == 0) {
        return 1;
    }

    /* A llama2.c model leaves the layer table alone; a GGUF model with more than
     * MAX_LAYERS layers fails with LLAMA2_ERR_BUFFER_TOO_SMALL. */
    check(llama2_model_open(&model, (const uint8_t *)model_words, model_len, layers, MAX_LAYERS), argv[1]);
    check(llama2_model_config(&model, &config), "config");
    /* Every size is checked by the library: a larger model fails with
     * LLAMA2_ERR_BUFFER_TOO_SMALL instead of overrunning the arrays. */
    check(llama2_model_buffer_sizes(&model, config.seq_len, &sizes), "sizes");
    if (tokenizer_path == NULL && config.format == LLAMA2_FORMAT_GGUF) {
        check(llama2_tokenizer_open_model(&tokenizer, (const uint8_t *)model_words, model_len, index_buffer,
                                          sizeof index_buffer / sizeof *index_buffer),
              argv[1]);
    } else {
        tokenizer_path = tokenizer_path != NULL ? tokenizer_path : "tokenizer.bin";
        if ((tokenizer_len = read_file(tokenizer_path, tokenizer_words)) == 0) {
            return 1;
        }
        check(llama2_tokenizer_open(&tokenizer, (const uint8_t *)tokenizer_words, tokenizer_len, config.vocab_size,
                                    index_buffer, sizeof index_buffer / sizeof *index_buffer),
              tokenizer_path);
    }
    /* The special tokens: 1 and 2 in a tokenizer.bin, what the file says in a GGUF model. */
    check(llama2_tokenizer_vocab(&tokenizer, &vocab), "vocab");
    check(llama2_state_init(&state, &model, config.seq_len, activations, sizeof activations / sizeof *activations),
          "state");
    check(llama2_sampler_init(&sampler, &settings, config.vocab_size, scratch, sizeof scratch / sizeof *scratch),
          "sampler");
    check(llama2_text_init(&text), "text");

    /* llama2.c's loop: steps count the prompt; 0 or too many mean the whole context. */
    steps = requested <= 0 || (size_t)requested > config.seq_len ? config.seq_len : (size_t)requested;
    check(llama2_encode(&tokenizer, prompt, strlen(prompt), true, false, prompt_tokens,
                        sizeof prompt_tokens / sizeof *prompt_tokens, &n_prompt),
          "encode");
    token = prompt_tokens[0];
    for (pos = 0; pos < steps; pos++) {
        check(llama2_forward(&model, &state, token, pos, &logits, &logits_len), "forward");
        if (pos + 1 < n_prompt) {
            next = prompt_tokens[pos + 1]; /* still in the prompt: forced */
        } else {
            check(llama2_sample(&sampler, logits, logits_len, &next), "sample");
        }
        if (next == vocab.bos) {
            break; /* the model ended the story */
        }
        check(llama2_decode(&tokenizer, &text, token, next, write_piece, stdout), "decode");
        token = next;
    }
    printf("\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
