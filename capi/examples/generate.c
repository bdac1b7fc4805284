/*
 * generate.c: prints a story with libllama2, like llama2.c's `run MODEL` in generate mode.
 *
 *   generate MODEL [-z TOKENIZER] [-t TEMPERATURE] [-p TOP_P] [-s SEED] [-n STEPS] [-i PROMPT]
 *
 * MODEL is a llama2.c file or a GGUF file. The flags and defaults are llama2.c's: -z
 * tokenizer.bin (for a GGUF model, the tokenizer inside it), -t 1.0, -p 0.9, -s 0 (seed
 * from the clock), -n 256 (0 means the model's seq_len), no prompt. The story goes to
 * stdout, errors to stderr (exit status 1).
 *
 * Build, from the repository root:
 *   cargo build -p llama2-capi --release
 *   gcc -std=c99 -Wall -Wextra -Werror -I capi/include capi/examples/generate.c \
 *       target/release/libllama2.a -lm -lpthread -ldl -o generate
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama2.h"

/* Reads a whole file into malloc'ed memory, which is aligned for any type (the model bytes
 * must be 4-byte aligned). Returns 0 on success. */
static int read_file(const char *path, uint8_t **bytes, size_t *len) {
    FILE *file = fopen(path, "rb");
    long size;
    *bytes = NULL;
    if (file == NULL) {
        perror(path);
        return 1;
    }
    if (fseek(file, 0, SEEK_END) != 0 || (size = ftell(file)) < 0 || fseek(file, 0, SEEK_SET) != 0) {
        perror(path);
        fclose(file);
        return 1;
    }
    *len = (size_t)size;
    *bytes = malloc(*len > 0 ? *len : 1);
    if (*bytes == NULL || fread(*bytes, 1, *len, file) != *len) {
        fprintf(stderr, "%s: cannot read the file\n", path);
        fclose(file);
        return 1;
    }
    fclose(file);
    return 0;
}

/* The text callback: writes each piece to the FILE passed as `user`; a failed write stops
 * the generation (LLAMA2_ERR_CALLBACK). */
static int write_piece(const char *piece, size_t len, void *user) {
    return fwrite(piece, 1, len, (FILE *)user) == len ? 0 : 1;
}

static int usage(void) {
    fprintf(stderr, "usage: generate MODEL [-z TOKENIZER] [-t TEMPERATURE] [-p TOP_P] "
                    "[-s SEED] [-n STEPS] [-i PROMPT]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *model_path, *tokenizer_path = NULL, *prompt = NULL;
    llama2_sampling settings = {1.0f, 0.9f, 0};
    long steps = 256;
    /* Caller memory: the files, the handles and every buffer. */
    uint8_t *model_bytes = NULL, *tokenizer_bytes = NULL;
    size_t model_len = 0, tokenizer_len = 0, prompt_len;
    uint32_t *index = NULL, *prompt_tokens = NULL;
    float *activations = NULL;
    llama2_prob_index *scratch = NULL;
    llama2_layer *layers = NULL;
    size_t n_layers = 0;
    llama2_model model;
    llama2_tokenizer tokenizer;
    llama2_state state;
    llama2_sampler sampler;
    llama2_config config;
    llama2_buffer_sizes sizes;
    llama2_status status = LLAMA2_OK;
    const char *step = "";
    int i, exit_code = 1;

    if (argc < 2 || argv[1][0] == '-') {
        return usage();
    }
    model_path = argv[1];
    for (i = 2; i < argc; i += 2) {
        const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (value == NULL || flag[0] != '-' || strlen(flag) != 2) {
            return usage();
        }
        switch (flag[1]) {
        case 'z': tokenizer_path = value; break;
        case 't': settings.temperature = strtof(value, NULL); break;
        case 'p': settings.top_p = strtof(value, NULL); break;
        case 's': settings.seed = strtoull(value, NULL, 10); break;
        case 'n': steps = strtol(value, NULL, 10); break;
        case 'i': prompt = value; break;
        default: return usage();
        }
    }
    if (settings.seed == 0) {
        settings.seed = (uint64_t)time(NULL); /* llama2.c's -s 0 */
    }
    if (steps < 0) {
        steps = 0; /* 0: the whole context */
    }
    prompt_len = prompt != NULL ? strlen(prompt) : 0;

    if (read_file(model_path, &model_bytes, &model_len) != 0) {
        goto done;
    }
    step = model_path;
    /* A GGUF model needs a table of n_layers entries; a llama2.c model none (NULL, 0). */
    if ((status = llama2_model_layers_len(model_bytes, model_len, &n_layers)) != LLAMA2_OK) {
        goto done;
    }
    if (n_layers > 0 && (layers = malloc(n_layers * sizeof *layers)) == NULL) {
        fprintf(stderr, "generate: out of memory\n");
        goto done;
    }
    if ((status = llama2_model_open(&model, model_bytes, model_len, layers, n_layers)) != LLAMA2_OK ||
        (status = llama2_model_config(&model, &config)) != LLAMA2_OK ||
        (status = llama2_model_buffer_sizes(&model, config.seq_len, &sizes)) != LLAMA2_OK) {
        goto done;
    }
    index = malloc(sizes.tokenizer_index * sizeof *index);
    activations = malloc(sizes.state * sizeof *activations);
    scratch = malloc(sizes.sampler_scratch * sizeof *scratch);
    prompt_tokens = malloc(llama2_prompt_tokens_len(prompt_len) * sizeof *prompt_tokens);
    if (index == NULL || activations == NULL || scratch == NULL || prompt_tokens == NULL) {
        fprintf(stderr, "generate: out of memory\n");
        goto done;
    }
    if (tokenizer_path == NULL && config.format == LLAMA2_FORMAT_GGUF) {
        /* The vocabulary inside the GGUF file, read in place. */
        step = model_path;
        status = llama2_tokenizer_open_model(&tokenizer, model_bytes, model_len, index, sizes.tokenizer_index);
    } else {
        step = tokenizer_path = tokenizer_path != NULL ? tokenizer_path : "tokenizer.bin";
        if (read_file(tokenizer_path, &tokenizer_bytes, &tokenizer_len) != 0) {
            goto done;
        }
        status = llama2_tokenizer_open(&tokenizer, tokenizer_bytes, tokenizer_len, config.vocab_size, index,
                                       sizes.tokenizer_index);
    }
    if (status != LLAMA2_OK) {
        goto done;
    }
    step = "setup";
    if ((status = llama2_state_init(&state, &model, config.seq_len, activations, sizes.state)) != LLAMA2_OK ||
        (status = llama2_sampler_init(&sampler, &settings, config.vocab_size, scratch,
                                      sizes.sampler_scratch)) != LLAMA2_OK) {
        goto done;
    }
    step = "generate";
    status = llama2_generate(&model, &tokenizer, &state, &sampler, prompt, prompt_len, (size_t)steps,
                             prompt_tokens, llama2_prompt_tokens_len(prompt_len), write_piece, stdout,
                             NULL);
    if (status == LLAMA2_OK && fflush(stdout) == 0) {
        exit_code = 0;
    }

done:
    if (status != LLAMA2_OK) {
        fprintf(stderr, "generate: %s: %s\n", step, llama2_error_message(status));
    }
    free(prompt_tokens);
    free(scratch);
    free(activations);
    free(index);
    free(layers);
    free(tokenizer_bytes);
    free(model_bytes);
    return exit_code;
}
