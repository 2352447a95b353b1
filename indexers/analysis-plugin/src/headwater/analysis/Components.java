package headwater.analysis;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.charfilter.NormalizeCharMap;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenFilter;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenizer;
import org.apache.lucene.analysis.ngram.NGramTokenFilter;
import org.apache.lucene.analysis.ngram.NGramTokenizer;
import org.apache.lucene.analysis.reverse.ReverseStringFilter;
import org.apache.lucene.analysis.synonym.SolrSynonymParser;
import org.apache.lucene.analysis.synonym.SynonymFilter;
import org.apache.lucene.analysis.synonym.SynonymGraphFilter;
import org.apache.lucene.analysis.synonym.SynonymMap;
import org.apache.lucene.analysis.synonym.WordnetSynonymParser;
import org.apache.lucene.util.CharsRef;
import org.apache.lucene.util.CharsRefBuilder;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexService.IndexCreationContext;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.AbstractCharFilterFactory;
import org.elasticsearch.index.analysis.AbstractIndexAnalyzerProvider;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;
import org.elasticsearch.index.analysis.AbstractTokenizerFactory;
import org.elasticsearch.index.analysis.Analysis;
import org.elasticsearch.index.analysis.AnalysisMode;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.index.analysis.CharFilterFactory;
import org.elasticsearch.index.analysis.CustomAnalyzer;
import org.elasticsearch.index.analysis.NormalizingCharFilterFactory;
import org.elasticsearch.index.analysis.NormalizingTokenFilterFactory;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;

import java.io.IOException;
import java.io.Reader;
import java.io.StringReader;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;
import java.util.function.IntPredicate;
import java.util.function.Supplier;

/** Factories for the analysis components: the generic wrappers and the ones with parameters. */
final class Components {

    private Components() {}

    // Wrappers: a name plus a Lucene constructor ---------------------------------------------------

    static AnalyzerProvider<Analyzer> analyzer(String name, Analyzer analyzer) {
        return new AbstractIndexAnalyzerProvider<>(name) {
            @Override
            public Analyzer get() {
                return analyzer;
            }
        };
    }

    static TokenizerFactory tokenizer(String name, Supplier<Tokenizer> create) {
        return new AbstractTokenizerFactory(name) {
            @Override
            public Tokenizer create() {
                return create.get();
            }
        };
    }

    static TokenFilterFactory filter(String name, boolean normalizing, Function<TokenStream, TokenStream> create) {
        return normalizing ? new NormalizingFilter(name, create) : new Filter(name, create);
    }

    static CharFilterFactory charFilter(String name, boolean normalizing, Function<Reader, Reader> create) {
        if (normalizing) {
            return new NormalizingCharFilter(name, create);
        }
        return new AbstractCharFilterFactory(name) {
            @Override
            public Reader create(Reader reader) {
                return create.apply(reader);
            }
        };
    }

    static class Filter extends AbstractTokenFilterFactory {
        private final Function<TokenStream, TokenStream> create;

        Filter(String name, Function<TokenStream, TokenStream> create) {
            super(name);
            this.create = create;
        }

        @Override
        public TokenStream create(TokenStream stream) {
            return create.apply(stream);
        }
    }

    /** May also run in normalizers (keyword fields) and on the terms of prefix or fuzzy queries. */
    static final class NormalizingFilter extends Filter implements NormalizingTokenFilterFactory {
        NormalizingFilter(String name, Function<TokenStream, TokenStream> create) {
            super(name, create);
        }
    }

    static final class NormalizingCharFilter extends AbstractCharFilterFactory implements NormalizingCharFilterFactory {
        private final Function<Reader, Reader> create;

        NormalizingCharFilter(String name, Function<Reader, Reader> create) {
            super(name);
            this.create = create;
        }

        @Override
        public Reader create(Reader reader) {
            return create.apply(reader);
        }
    }

    /** N-gram filters: they break the fast vector highlighter and cannot come before synonyms. */
    static final class GramFilter extends Filter {
        GramFilter(String name, Function<TokenStream, TokenStream> create) {
            super(name, create);
        }

        @Override
        public boolean breaksFastVectorHighlighter() {
            return true;
        }

        @Override
        public TokenFilterFactory getSynonymFilter() {
            throw new IllegalArgumentException("Token filter [" + name() + "] cannot be used to parse synonyms");
        }
    }

    // Language analyzers ----------------------------------------------------------------------------

    /** A Lucene language analyzer with Elasticsearch's `stopwords`, `stopwords_path`, `stem_exclusion`. */
    static Analyzer language(Class<? extends Analyzer> type, Environment env, Settings settings) {
        try {
            CharArraySet defaults = (CharArraySet) type.getMethod("getDefaultStopSet").invoke(null);
            CharArraySet stopwords = Analysis.parseStopWords(env, settings, defaults);
            CharArraySet stemExclusion = Analysis.parseStemExclusion(settings, CharArraySet.EMPTY_SET);
            try {
                return type.getConstructor(CharArraySet.class, CharArraySet.class).newInstance(stopwords, stemExclusion);
            } catch (NoSuchMethodException stopwordsOnly) { // cjk, greek, persian, thai
                return type.getConstructor(CharArraySet.class).newInstance(stopwords);
            }
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot build " + type.getSimpleName(), e);
        }
    }

    static Analyzer defaultLanguage(Class<? extends Analyzer> type) {
        try {
            return type.getConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot build " + type.getSimpleName(), e);
        }
    }

    // Token filters with parameters -----------------------------------------------------------------

    static Function<TokenStream, TokenStream> lowercase(String language) {
        if (language == null) {
            return LowerCaseFilter::new;
        }
        return switch (language.toLowerCase(Locale.ROOT)) {
            case "greek" -> org.apache.lucene.analysis.el.GreekLowerCaseFilter::new;
            case "irish" -> org.apache.lucene.analysis.ga.IrishLowerCaseFilter::new;
            case "turkish" -> org.apache.lucene.analysis.tr.TurkishLowerCaseFilter::new;
            default -> throw new IllegalArgumentException("language [" + language + "] not support for lower case");
        };
    }

    static TokenFilterFactory edgeNGramFilter(IndexSettings index, Environment env, String name, Settings settings) {
        int min = settings.getAsInt("min_gram", 1);
        int max = settings.getAsInt("max_gram", 2);
        boolean preserveOriginal = settings.getAsBoolean("preserve_original", false);
        String side = settings.get("side", "front");
        if (side.equals("front")) {
            return new GramFilter(name, stream -> new EdgeNGramTokenFilter(stream, min, max, preserveOriginal));
        }
        if (side.equals("back")) { // grams of the reversed token, turned back
            return new GramFilter(
                name,
                stream -> new ReverseStringFilter(new EdgeNGramTokenFilter(new ReverseStringFilter(stream), min, max, preserveOriginal))
            );
        }
        throw new IllegalArgumentException("invalid side: " + side);
    }

    static TokenFilterFactory nGramFilter(IndexSettings index, Environment env, String name, Settings settings) {
        int min = settings.getAsInt("min_gram", 1);
        int max = settings.getAsInt("max_gram", 2);
        checkNGramDiff(index, "NGram Token Filter", min, max);
        boolean preserveOriginal = settings.getAsBoolean("preserve_original", false);
        return new GramFilter(name, stream -> new NGramTokenFilter(stream, min, max, preserveOriginal));
    }

    private static void checkNGramDiff(IndexSettings index, String what, int min, int max) {
        if (max - min > index.getMaxNgramDiff()) {
            throw new IllegalArgumentException(
                "The difference between max_gram and min_gram in " + what + " must be less than or equal to: ["
                    + index.getMaxNgramDiff() + "] but was [" + (max - min) + "]. This limit can be set by changing the ["
                    + IndexSettings.MAX_NGRAM_DIFF_SETTING.getKey() + "] index level setting."
            );
        }
    }

    // Tokenizers with parameters --------------------------------------------------------------------

    static TokenizerFactory nGramTokenizer(IndexSettings index, Environment env, String name, Settings settings) {
        int min = settings.getAsInt("min_gram", NGramTokenizer.DEFAULT_MIN_NGRAM_SIZE);
        int max = settings.getAsInt("max_gram", NGramTokenizer.DEFAULT_MAX_NGRAM_SIZE);
        checkNGramDiff(index, "NGram Tokenizer", min, max);
        IntPredicate tokenChar = tokenChars(settings);
        return tokenizer(name, () -> new NGramTokenizer(min, max) {
            @Override
            protected boolean isTokenChar(int c) {
                return tokenChar.test(c);
            }
        });
    }

    static TokenizerFactory edgeNGramTokenizer(IndexSettings index, Environment env, String name, Settings settings) {
        int min = settings.getAsInt("min_gram", NGramTokenizer.DEFAULT_MIN_NGRAM_SIZE);
        int max = settings.getAsInt("max_gram", NGramTokenizer.DEFAULT_MAX_NGRAM_SIZE);
        IntPredicate tokenChar = tokenChars(settings);
        return tokenizer(name, () -> new EdgeNGramTokenizer(min, max) {
            @Override
            protected boolean isTokenChar(int c) {
                return tokenChar.test(c);
            }
        });
    }

    /** `token_chars` (letter, digit, whitespace, punctuation, symbol, custom): what a gram may hold. */
    static IntPredicate tokenChars(Settings settings) {
        List<String> classes = settings.getAsList("token_chars");
        if (classes.isEmpty()) {
            return c -> true;
        }
        IntPredicate any = c -> false;
        for (String raw : classes) {
            String name = raw.toLowerCase(Locale.ROOT).trim();
            IntPredicate one = switch (name) {
                case "letter" -> Character::isLetter;
                case "digit" -> Character::isDigit;
                case "whitespace" -> Character::isWhitespace;
                case "punctuation" -> c -> switch (Character.getType(c)) {
                    case Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
                        Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
                        Character.OTHER_PUNCTUATION -> true;
                    default -> false;
                };
                case "symbol" -> c -> switch (Character.getType(c)) {
                    case Character.MATH_SYMBOL, Character.CURRENCY_SYMBOL, Character.MODIFIER_SYMBOL, Character.OTHER_SYMBOL -> true;
                    default -> false;
                };
                case "custom" -> {
                    String custom = settings.get("custom_token_chars");
                    if (custom == null) {
                        throw new IllegalArgumentException("Token type: 'custom' requires setting `custom_token_chars`");
                    }
                    yield c -> custom.indexOf(c) >= 0;
                }
                default -> throw new IllegalArgumentException(
                    "Unknown token type: '" + name + "', must be one of [letter, digit, whitespace, punctuation, symbol, custom]"
                );
            };
            any = any.or(one);
        }
        return any;
    }

    // Char filters with parameters ------------------------------------------------------------------

    /** `mappings` rules "from => to", with the escapes \\ \" \' \t \n \r \b \f \\uXXXX. */
    static NormalizeCharMap mappings(List<String> rules) {
        NormalizeCharMap.Builder builder = new NormalizeCharMap.Builder();
        for (String rule : rules) {
            int arrow = rule.lastIndexOf("=>");
            String from = arrow < 0 ? "" : unescape(rule.substring(0, arrow).trim());
            if (from.isEmpty()) {
                throw new IllegalArgumentException("Invalid Mapping Rule : [" + rule + "]");
            }
            builder.add(from, unescape(rule.substring(arrow + 2).trim()));
        }
        return builder.build();
    }

    private static String unescape(String text) {
        StringBuilder out = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c != '\\' || i + 1 == text.length()) {
                out.append(c);
                continue;
            }
            char next = text.charAt(++i);
            switch (next) {
                case 't' -> out.append('\t');
                case 'n' -> out.append('\n');
                case 'r' -> out.append('\r');
                case 'b' -> out.append('\b');
                case 'f' -> out.append('\f');
                case 'u' -> {
                    if (i + 4 >= text.length()) {
                        throw new IllegalArgumentException("Invalid escaped char in [" + text + "]");
                    }
                    out.append((char) Integer.parseInt(text.substring(i + 1, i + 5), 16));
                    i += 4;
                }
                default -> out.append(next); // \\ \" \' and any other escaped character
            }
        }
        return out.toString();
    }

    // Synonyms --------------------------------------------------------------------------------------

    /**
     * `synonym` and `synonym_graph`: rules from `synonyms` or `synonyms_path`, in Solr or WordNet
     * `format`, with `expand`, `lenient` and `updateable`. As in Elasticsearch, the rules are analyzed
     * by the tokenizer and the filters before this one in the analyzer, so they match what reaches it.
     */
    static final class Synonyms extends AbstractTokenFilterFactory {
        private final Environment env;
        private final Settings settings;
        private final boolean graph;
        private final boolean expand;
        private final boolean lenient;
        private final boolean wordnet;
        private final AnalysisMode mode;

        Synonyms(Environment env, String name, Settings settings, boolean graph) {
            super(name);
            if (!settings.hasValue("synonyms") && !settings.hasValue("synonyms_path")) {
                throw new IllegalArgumentException(
                    settings.hasValue("synonyms_set")
                        ? "synonym [" + name + "]: `synonyms_set` needs the synonyms API, which the local stack does not have"
                        : "synonym requires either `synonyms`, `synonyms_set` or `synonyms_path` to be configured"
                );
            }
            this.env = env;
            this.settings = settings;
            this.graph = graph;
            this.expand = settings.getAsBoolean("expand", true);
            boolean updateable = settings.getAsBoolean("updateable", false);
            this.lenient = settings.getAsBoolean("lenient", updateable);
            this.wordnet = "wordnet".equalsIgnoreCase(settings.get("format", ""));
            this.mode = updateable ? AnalysisMode.SEARCH_TIME : AnalysisMode.ALL;
        }

        @Override
        public AnalysisMode getAnalysisMode() {
            return mode;
        }

        @Override
        public TokenStream create(TokenStream stream) {
            throw new IllegalStateException("a synonym filter is specialised for its analyzer first");
        }

        @Override
        public TokenFilterFactory getChainAwareTokenFilterFactory(
            IndexCreationContext context,
            TokenizerFactory tokenizer,
            List<CharFilterFactory> charFilters,
            List<TokenFilterFactory> previousFilters,
            Function<String, TokenFilterFactory> allFilters
        ) {
            Analyzer chain = new CustomAnalyzer(
                tokenizer,
                charFilters.toArray(CharFilterFactory[]::new),
                previousFilters.stream().map(TokenFilterFactory::getSynonymFilter).toArray(TokenFilterFactory[]::new)
            );
            SynonymMap map = build(chain);
            String name = name();
            return new TokenFilterFactory() {
                @Override
                public String name() {
                    return name;
                }

                @Override
                @SuppressWarnings("deprecation") // SynonymFilter: Elasticsearch's `synonym` still is this one
                public TokenStream create(TokenStream stream) {
                    if (map.fst == null) {
                        return stream;
                    }
                    return graph ? new SynonymGraphFilter(stream, map, false) : new SynonymFilter(stream, map, false);
                }

                @Override
                public TokenFilterFactory getSynonymFilter() {
                    return IDENTITY_FILTER; // a later synonym filter reads the rules without these
                }

                @Override
                public AnalysisMode getAnalysisMode() {
                    return mode;
                }
            };
        }

        private SynonymMap build(Analyzer chain) {
            Reader rules;
            String origin;
            if (settings.hasValue("synonyms")) {
                rules = new StringReader(String.join("\n", Analysis.getWordList(env, settings, "synonyms")));
                origin = "'" + name() + "' analyzer settings";
            } else {
                origin = settings.get("synonyms_path");
                rules = Analysis.getReaderFromFile(env, origin, "synonyms");
            }
            try {
                SynonymMap.Parser parser = wordnet ? new LenientWordnet(expand, lenient, chain) : new LenientSolr(expand, lenient, chain);
                parser.parse(rules);
                return parser.build();
            } catch (Exception e) {
                throw new IllegalArgumentException("failed to build synonyms from [" + origin + "]", e);
            }
        }
    }

    // With `lenient`, a rule whose words the analyzer rejects (a stop word, say) is skipped, not fatal.
    private static final class LenientSolr extends SolrSynonymParser {
        private final boolean lenient;

        LenientSolr(boolean expand, boolean lenient, Analyzer analyzer) {
            super(true, expand, analyzer);
            this.lenient = lenient;
        }

        @Override
        public CharsRef analyze(String text, CharsRefBuilder reuse) throws IOException {
            return lenientAnalyze(lenient, () -> super.analyze(text, reuse));
        }

        @Override
        public void add(CharsRef input, CharsRef output, boolean includeOrig) {
            if (!lenient || (input.length > 0 && output.length > 0)) {
                super.add(input, output, includeOrig);
            }
        }
    }

    private static final class LenientWordnet extends WordnetSynonymParser {
        private final boolean lenient;

        LenientWordnet(boolean expand, boolean lenient, Analyzer analyzer) {
            super(true, expand, analyzer);
            this.lenient = lenient;
        }

        @Override
        public CharsRef analyze(String text, CharsRefBuilder reuse) throws IOException {
            return lenientAnalyze(lenient, () -> super.analyze(text, reuse));
        }

        @Override
        public void add(CharsRef input, CharsRef output, boolean includeOrig) {
            if (!lenient || (input.length > 0 && output.length > 0)) {
                super.add(input, output, includeOrig);
            }
        }
    }

    private interface Analyze {
        CharsRef run() throws IOException;
    }

    private static CharsRef lenientAnalyze(boolean lenient, Analyze analyze) throws IOException {
        try {
            return analyze.run();
        } catch (IllegalArgumentException e) {
            if (lenient) {
                return new CharsRef(""); // add() drops a rule with an empty side
            }
            throw e;
        }
    }
}
