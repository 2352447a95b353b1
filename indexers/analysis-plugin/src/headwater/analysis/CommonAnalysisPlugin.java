package headwater.analysis;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.StopFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.ar.ArabicAnalyzer;
import org.apache.lucene.analysis.ar.ArabicNormalizationFilter;
import org.apache.lucene.analysis.ar.ArabicStemFilter;
import org.apache.lucene.analysis.bg.BulgarianAnalyzer;
import org.apache.lucene.analysis.bn.BengaliAnalyzer;
import org.apache.lucene.analysis.bn.BengaliNormalizationFilter;
import org.apache.lucene.analysis.br.BrazilianAnalyzer;
import org.apache.lucene.analysis.br.BrazilianStemFilter;
import org.apache.lucene.analysis.ca.CatalanAnalyzer;
import org.apache.lucene.analysis.charfilter.HTMLStripCharFilter;
import org.apache.lucene.analysis.charfilter.MappingCharFilter;
import org.apache.lucene.analysis.cjk.CJKAnalyzer;
import org.apache.lucene.analysis.cjk.CJKBigramFilter;
import org.apache.lucene.analysis.cjk.CJKWidthFilter;
import org.apache.lucene.analysis.ckb.SoraniAnalyzer;
import org.apache.lucene.analysis.ckb.SoraniNormalizationFilter;
import org.apache.lucene.analysis.classic.ClassicFilter;
import org.apache.lucene.analysis.classic.ClassicTokenizer;
import org.apache.lucene.analysis.core.DecimalDigitFilter;
import org.apache.lucene.analysis.core.FlattenGraphFilter;
import org.apache.lucene.analysis.core.KeywordAnalyzer;
import org.apache.lucene.analysis.core.KeywordTokenizer;
import org.apache.lucene.analysis.core.LetterTokenizer;
import org.apache.lucene.analysis.core.SimpleAnalyzer;
import org.apache.lucene.analysis.core.StopAnalyzer;
import org.apache.lucene.analysis.core.UpperCaseFilter;
import org.apache.lucene.analysis.core.WhitespaceAnalyzer;
import org.apache.lucene.analysis.core.WhitespaceTokenizer;
import org.apache.lucene.analysis.cz.CzechAnalyzer;
import org.apache.lucene.analysis.cz.CzechStemFilter;
import org.apache.lucene.analysis.da.DanishAnalyzer;
import org.apache.lucene.analysis.de.GermanAnalyzer;
import org.apache.lucene.analysis.de.GermanNormalizationFilter;
import org.apache.lucene.analysis.de.GermanStemFilter;
import org.apache.lucene.analysis.el.GreekAnalyzer;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.en.KStemFilter;
import org.apache.lucene.analysis.en.PorterStemFilter;
import org.apache.lucene.analysis.es.SpanishAnalyzer;
import org.apache.lucene.analysis.et.EstonianAnalyzer;
import org.apache.lucene.analysis.eu.BasqueAnalyzer;
import org.apache.lucene.analysis.fa.PersianAnalyzer;
import org.apache.lucene.analysis.fa.PersianNormalizationFilter;
import org.apache.lucene.analysis.fa.PersianStemFilter;
import org.apache.lucene.analysis.fi.FinnishAnalyzer;
import org.apache.lucene.analysis.fr.FrenchAnalyzer;
import org.apache.lucene.analysis.ga.IrishAnalyzer;
import org.apache.lucene.analysis.gl.GalicianAnalyzer;
import org.apache.lucene.analysis.hi.HindiAnalyzer;
import org.apache.lucene.analysis.hi.HindiNormalizationFilter;
import org.apache.lucene.analysis.hu.HungarianAnalyzer;
import org.apache.lucene.analysis.hy.ArmenianAnalyzer;
import org.apache.lucene.analysis.id.IndonesianAnalyzer;
import org.apache.lucene.analysis.in.IndicNormalizationFilter;
import org.apache.lucene.analysis.it.ItalianAnalyzer;
import org.apache.lucene.analysis.lt.LithuanianAnalyzer;
import org.apache.lucene.analysis.lv.LatvianAnalyzer;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.miscellaneous.KeywordRepeatFilter;
import org.apache.lucene.analysis.miscellaneous.LengthFilter;
import org.apache.lucene.analysis.miscellaneous.LimitTokenCountFilter;
import org.apache.lucene.analysis.miscellaneous.PatternKeywordMarkerFilter;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.apache.lucene.analysis.miscellaneous.ScandinavianFoldingFilter;
import org.apache.lucene.analysis.miscellaneous.ScandinavianNormalizationFilter;
import org.apache.lucene.analysis.miscellaneous.SetKeywordMarkerFilter;
import org.apache.lucene.analysis.miscellaneous.TrimFilter;
import org.apache.lucene.analysis.miscellaneous.TruncateTokenFilter;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenFilter;
import org.apache.lucene.analysis.ngram.EdgeNGramTokenizer;
import org.apache.lucene.analysis.ngram.NGramTokenFilter;
import org.apache.lucene.analysis.ngram.NGramTokenizer;
import org.apache.lucene.analysis.nl.DutchAnalyzer;
import org.apache.lucene.analysis.no.NorwegianAnalyzer;
import org.apache.lucene.analysis.path.PathHierarchyTokenizer;
import org.apache.lucene.analysis.path.ReversePathHierarchyTokenizer;
import org.apache.lucene.analysis.pattern.PatternReplaceCharFilter;
import org.apache.lucene.analysis.pattern.PatternTokenizer;
import org.apache.lucene.analysis.pattern.SimplePatternSplitTokenizer;
import org.apache.lucene.analysis.pattern.SimplePatternTokenizer;
import org.apache.lucene.analysis.pt.PortugueseAnalyzer;
import org.apache.lucene.analysis.reverse.ReverseStringFilter;
import org.apache.lucene.analysis.ro.RomanianAnalyzer;
import org.apache.lucene.analysis.ru.RussianAnalyzer;
import org.apache.lucene.analysis.shingle.ShingleFilter;
import org.apache.lucene.analysis.snowball.SnowballFilter;
import org.apache.lucene.analysis.sv.SwedishAnalyzer;
import org.apache.lucene.analysis.th.ThaiAnalyzer;
import org.apache.lucene.analysis.th.ThaiTokenizer;
import org.apache.lucene.analysis.tr.ApostropheFilter;
import org.apache.lucene.analysis.tr.TurkishAnalyzer;
import org.apache.lucene.analysis.util.ElisionFilter;
import org.apache.lucene.util.AttributeFactory;
import org.elasticsearch.common.regex.Regex;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.index.IndexSettings;
import org.elasticsearch.index.analysis.Analysis;
import org.elasticsearch.index.analysis.AnalyzerProvider;
import org.elasticsearch.index.analysis.CharFilterFactory;
import org.elasticsearch.index.analysis.PreBuiltAnalyzerProviderFactory;
import org.elasticsearch.index.analysis.PreConfiguredCharFilter;
import org.elasticsearch.index.analysis.PreConfiguredTokenFilter;
import org.elasticsearch.index.analysis.PreConfiguredTokenizer;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.indices.analysis.PreBuiltCacheFactory.CachingStrategy;
import org.elasticsearch.lucene.analysis.miscellaneous.DisableGraphAttribute;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.regex.Pattern;

import static headwater.analysis.Components.analyzer;
import static headwater.analysis.Components.charFilter;
import static headwater.analysis.Components.filter;
import static headwater.analysis.Components.tokenizer;
import static org.elasticsearch.plugins.AnalysisPlugin.requiresAnalysisSettings;

/**
 * The analyzers, token filters, tokenizers and char filters of Elasticsearch's analysis-common
 * module, under its names and with its parameters, built from the Lucene jars the distribution
 * ships. The local stack runs the integ-test distribution, which lacks that module; production
 * clusters and the official image have it, so one index mapping works against both.
 *
 * Left out: the `chinese`, `fingerprint`, `pattern` and `snowball` analyzers, and the filters
 * that need Elasticsearch's own code (`word_delimiter*`, `multiplexer`, `condition`, `unique`,
 * `min_hash`, `common_grams`, `stemmer_override`, decompounders, `english_plural` stemming).
 */
public final class CommonAnalysisPlugin extends Plugin implements AnalysisPlugin {

    /** Language analyzers: `stopwords`, `stopwords_path` and (most) `stem_exclusion`. */
    static final Map<String, Class<? extends Analyzer>> LANGUAGES = new TreeMap<>(
        Map.ofEntries(
            Map.entry("arabic", ArabicAnalyzer.class),
            Map.entry("armenian", ArmenianAnalyzer.class),
            Map.entry("basque", BasqueAnalyzer.class),
            Map.entry("bengali", BengaliAnalyzer.class),
            Map.entry("brazilian", BrazilianAnalyzer.class),
            Map.entry("bulgarian", BulgarianAnalyzer.class),
            Map.entry("catalan", CatalanAnalyzer.class),
            Map.entry("cjk", CJKAnalyzer.class),
            Map.entry("czech", CzechAnalyzer.class),
            Map.entry("danish", DanishAnalyzer.class),
            Map.entry("dutch", DutchAnalyzer.class),
            Map.entry("english", EnglishAnalyzer.class),
            Map.entry("estonian", EstonianAnalyzer.class),
            Map.entry("finnish", FinnishAnalyzer.class),
            Map.entry("french", FrenchAnalyzer.class),
            Map.entry("galician", GalicianAnalyzer.class),
            Map.entry("german", GermanAnalyzer.class),
            Map.entry("greek", GreekAnalyzer.class),
            Map.entry("hindi", HindiAnalyzer.class),
            Map.entry("hungarian", HungarianAnalyzer.class),
            Map.entry("indonesian", IndonesianAnalyzer.class),
            Map.entry("irish", IrishAnalyzer.class),
            Map.entry("italian", ItalianAnalyzer.class),
            Map.entry("latvian", LatvianAnalyzer.class),
            Map.entry("lithuanian", LithuanianAnalyzer.class),
            Map.entry("norwegian", NorwegianAnalyzer.class),
            Map.entry("persian", PersianAnalyzer.class),
            Map.entry("portuguese", PortugueseAnalyzer.class),
            Map.entry("romanian", RomanianAnalyzer.class),
            Map.entry("russian", RussianAnalyzer.class),
            Map.entry("sorani", SoraniAnalyzer.class),
            Map.entry("spanish", SpanishAnalyzer.class),
            Map.entry("swedish", SwedishAnalyzer.class),
            Map.entry("thai", ThaiAnalyzer.class),
            Map.entry("turkish", TurkishAnalyzer.class)
        )
    );

    /** A token filter without parameters; `normalizing` ones may also run in normalizers. */
    record Plain(boolean normalizing, Function<TokenStream, TokenStream> create) {}

    static final Map<String, Plain> PLAIN_FILTERS = new TreeMap<>(
        Map.ofEntries(
            Map.entry("apostrophe", new Plain(false, ApostropheFilter::new)),
            Map.entry("arabic_normalization", new Plain(true, ArabicNormalizationFilter::new)),
            Map.entry("arabic_stem", new Plain(false, ArabicStemFilter::new)),
            Map.entry("bengali_normalization", new Plain(true, BengaliNormalizationFilter::new)),
            Map.entry("brazilian_stem", new Plain(false, BrazilianStemFilter::new)),
            Map.entry("cjk_bigram", new Plain(false, CJKBigramFilter::new)),
            Map.entry("cjk_width", new Plain(true, CJKWidthFilter::new)),
            Map.entry("classic", new Plain(false, ClassicFilter::new)),
            Map.entry("czech_stem", new Plain(false, CzechStemFilter::new)),
            Map.entry("decimal_digit", new Plain(true, DecimalDigitFilter::new)),
            Map.entry("dutch_stem", new Plain(false, s -> new SnowballFilter(s, "Dutch"))),
            Map.entry("flatten_graph", new Plain(false, FlattenGraphFilter::new)),
            Map.entry("french_stem", new Plain(false, s -> new SnowballFilter(s, "French"))),
            Map.entry("german_normalization", new Plain(true, GermanNormalizationFilter::new)),
            Map.entry("german_stem", new Plain(false, GermanStemFilter::new)),
            Map.entry("hindi_normalization", new Plain(true, HindiNormalizationFilter::new)),
            Map.entry("indic_normalization", new Plain(true, IndicNormalizationFilter::new)),
            Map.entry("kstem", new Plain(false, KStemFilter::new)),
            Map.entry("persian_normalization", new Plain(true, PersianNormalizationFilter::new)),
            Map.entry("persian_stem", new Plain(false, PersianStemFilter::new)),
            Map.entry("porter_stem", new Plain(false, PorterStemFilter::new)),
            Map.entry("remove_duplicates", new Plain(false, RemoveDuplicatesTokenFilter::new)),
            Map.entry("reverse", new Plain(false, ReverseStringFilter::new)),
            Map.entry("russian_stem", new Plain(false, s -> new SnowballFilter(s, "Russian"))),
            Map.entry("scandinavian_folding", new Plain(true, ScandinavianFoldingFilter::new)),
            Map.entry("scandinavian_normalization", new Plain(true, ScandinavianNormalizationFilter::new)),
            Map.entry("sorani_normalization", new Plain(true, SoraniNormalizationFilter::new)),
            Map.entry("trim", new Plain(true, TrimFilter::new)),
            Map.entry("uppercase", new Plain(true, UpperCaseFilter::new))
        )
    );

    private static final int MAX_TOKEN_LENGTH = 255; // StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH

    @Override
    public Map<String, AnalysisProvider<AnalyzerProvider<? extends Analyzer>>> getAnalyzers() {
        Map<String, AnalysisProvider<AnalyzerProvider<? extends Analyzer>>> analyzers = new TreeMap<>();
        LANGUAGES.forEach((language, type) -> analyzers.put(language, (index, env, name, s) -> analyzer(name, Components.language(type, env, s))));
        analyzers.put(
            "stop",
            (index, env, name, s) -> analyzer(name, new StopAnalyzer(Analysis.parseStopWords(env, s, EnglishAnalyzer.ENGLISH_STOP_WORDS_SET)))
        );
        analyzers.put("simple", (index, env, name, s) -> analyzer(name, new SimpleAnalyzer()));
        analyzers.put("whitespace", (index, env, name, s) -> analyzer(name, new WhitespaceAnalyzer()));
        analyzers.put("keyword", (index, env, name, s) -> analyzer(name, new KeywordAnalyzer()));
        return analyzers;
    }

    @Override
    public List<PreBuiltAnalyzerProviderFactory> getPreBuiltAnalyzerProviderFactories() {
        List<PreBuiltAnalyzerProviderFactory> analyzers = new ArrayList<>();
        LANGUAGES.forEach(
            (language, type) -> analyzers.add(
                new PreBuiltAnalyzerProviderFactory(language, CachingStrategy.LUCENE, () -> Components.defaultLanguage(type))
            )
        );
        return analyzers;
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        Map<String, AnalysisProvider<TokenFilterFactory>> filters = new TreeMap<>();
        PLAIN_FILTERS.forEach((type, plain) -> filters.put(type, (index, env, name, s) -> filter(name, plain.normalizing(), plain.create())));
        filters.put("asciifolding", (index, env, name, s) -> {
            boolean preserveOriginal = s.getAsBoolean("preserve_original", false);
            return filter(name, true, stream -> new ASCIIFoldingFilter(stream, preserveOriginal));
        });
        filters.put("lowercase", (index, env, name, s) -> filter(name, true, Components.lowercase(s.get("language"))));
        filters.put(
            "stemmer",
            (index, env, name, s) -> filter(name, false, Stemmers.of(s.get("language", s.get("name", "porter")), name))
        );
        filters.put("snowball", (index, env, name, s) -> {
            String language = s.get("language", "English");
            return filter(name, false, stream -> new SnowballFilter(stream, language));
        });
        filters.put("synonym", requiresAnalysisSettings((index, env, name, s) -> new Components.Synonyms(env, name, s, false)));
        filters.put("synonym_graph", requiresAnalysisSettings((index, env, name, s) -> new Components.Synonyms(env, name, s, true)));
        filters.put("edge_ngram", Components::edgeNGramFilter);
        filters.put("ngram", Components::nGramFilter);
        filters.put("keyword_marker", requiresAnalysisSettings((index, env, name, s) -> {
            boolean ignoreCase = s.getAsBoolean("ignore_case", false);
            String pattern = s.get("keywords_pattern");
            CharArraySet keywords = Analysis.getWordSet(env, s, "keywords");
            if (pattern != null && keywords != null) {
                throw new IllegalArgumentException("cannot specify both `keywords_pattern` and `keywords` or `keywords_path`");
            }
            if (pattern != null) {
                Pattern compiled = Pattern.compile(pattern);
                return filter(name, false, stream -> new PatternKeywordMarkerFilter(stream, compiled));
            }
            if (keywords == null) {
                throw new IllegalArgumentException("keyword filter requires either `keywords`, `keywords_path`, or `keywords_pattern` to be configured");
            }
            CharArraySet set = new CharArraySet(keywords, ignoreCase);
            return filter(name, false, stream -> new SetKeywordMarkerFilter(stream, set));
        }));
        filters.put("elision", requiresAnalysisSettings((index, env, name, s) -> {
            CharArraySet articles = Analysis.parseArticles(env, s);
            if (articles == null) {
                throw new IllegalArgumentException("elision filter requires [articles] or [articles_path] setting");
            }
            return filter(name, true, stream -> new ElisionFilter(stream, articles));
        }));
        filters.put("length", (index, env, name, s) -> {
            int min = s.getAsInt("min", 0);
            int max = s.getAsInt("max", Integer.MAX_VALUE);
            return filter(name, false, stream -> new LengthFilter(stream, min, max));
        });
        filters.put("limit", (index, env, name, s) -> {
            int max = s.getAsInt("max_token_count", 1);
            boolean consumeAll = s.getAsBoolean("consume_all_tokens", false);
            return filter(name, false, stream -> new LimitTokenCountFilter(stream, max, consumeAll));
        });
        filters.put("truncate", requiresAnalysisSettings((index, env, name, s) -> {
            int length = s.getAsInt("length", -1);
            if (length <= 0) {
                throw new IllegalArgumentException("length parameter must be provided");
            }
            return filter(name, false, stream -> TruncateTokenFilter.truncateAfterChars(stream, length));
        }));
        return filters;
    }

    @Override
    public List<PreConfiguredTokenFilter> getPreConfiguredTokenFilters() {
        List<PreConfiguredTokenFilter> filters = new ArrayList<>();
        PLAIN_FILTERS.forEach((name, plain) -> filters.add(PreConfiguredTokenFilter.singleton(name, plain.normalizing(), plain.create())));
        filters.add(PreConfiguredTokenFilter.singleton("asciifolding", true, ASCIIFoldingFilter::new));
        filters.add(PreConfiguredTokenFilter.singleton("stemmer", false, PorterStemFilter::new));
        filters.add(PreConfiguredTokenFilter.singleton("snowball", false, s -> new SnowballFilter(s, "English")));
        filters.add(PreConfiguredTokenFilter.singleton("stop", false, s -> new StopFilter(s, EnglishAnalyzer.ENGLISH_STOP_WORDS_SET)));
        filters.add(PreConfiguredTokenFilter.singleton("edge_ngram", false, false, s -> new EdgeNGramTokenFilter(s, 1)));
        filters.add(PreConfiguredTokenFilter.singleton("ngram", false, false, s -> new NGramTokenFilter(s, 1, 2, false)));
        filters.add(PreConfiguredTokenFilter.singleton("keyword_repeat", false, false, KeywordRepeatFilter::new));
        filters.add(PreConfiguredTokenFilter.singleton("elision", true, s -> new ElisionFilter(s, FrenchAnalyzer.DEFAULT_ARTICLES)));
        filters.add(PreConfiguredTokenFilter.singleton("length", false, s -> new LengthFilter(s, 0, Integer.MAX_VALUE)));
        filters.add(PreConfiguredTokenFilter.singleton("limit", false, s -> new LimitTokenCountFilter(s, 1, false)));
        filters.add(PreConfiguredTokenFilter.singleton("truncate", false, s -> TruncateTokenFilter.truncateAfterChars(s, 10)));
        filters.add(PreConfiguredTokenFilter.singleton("shingle", false, false, s -> {
            TokenStream shingles = new ShingleFilter(s);
            shingles.addAttribute(DisableGraphAttribute.class); // shingles of several sizes are no graph to follow
            return shingles;
        }));
        return filters;
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        Map<String, AnalysisProvider<TokenizerFactory>> tokenizers = new TreeMap<>();
        AttributeFactory attributes = AttributeFactory.DEFAULT_ATTRIBUTE_FACTORY;
        tokenizers.put("whitespace", (index, env, name, s) -> {
            int max = s.getAsInt("max_token_length", MAX_TOKEN_LENGTH);
            return tokenizer(name, () -> new WhitespaceTokenizer(attributes, max));
        });
        tokenizers.put("letter", (index, env, name, s) -> tokenizer(name, LetterTokenizer::new));
        tokenizers.put("keyword", (index, env, name, s) -> {
            int bufferSize = s.getAsInt("buffer_size", 256);
            return tokenizer(name, () -> new KeywordTokenizer(bufferSize));
        });
        tokenizers.put("classic", (index, env, name, s) -> {
            int max = s.getAsInt("max_token_length", MAX_TOKEN_LENGTH);
            return tokenizer(name, () -> {
                ClassicTokenizer tokenizer = new ClassicTokenizer();
                tokenizer.setMaxTokenLength(max);
                return tokenizer;
            });
        });
        tokenizers.put("uax_url_email", (index, env, name, s) -> {
            int max = s.getAsInt("max_token_length", MAX_TOKEN_LENGTH);
            return tokenizer(name, () -> {
                UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
                tokenizer.setMaxTokenLength(max);
                return tokenizer;
            });
        });
        tokenizers.put("ngram", Components::nGramTokenizer);
        tokenizers.put("edge_ngram", Components::edgeNGramTokenizer);
        tokenizers.put("pattern", (index, env, name, s) -> {
            Pattern pattern = Regex.compile(s.get("pattern", "\\W+"), s.get("flags"));
            int group = s.getAsInt("group", -1);
            return tokenizer(name, () -> new PatternTokenizer(pattern, group));
        });
        tokenizers.put("simple_pattern", (index, env, name, s) -> {
            String pattern = s.get("pattern", "");
            return tokenizer(name, () -> new SimplePatternTokenizer(pattern));
        });
        tokenizers.put("simple_pattern_split", (index, env, name, s) -> {
            String pattern = s.get("pattern", "");
            return tokenizer(name, () -> new SimplePatternSplitTokenizer(pattern));
        });
        tokenizers.put("path_hierarchy", CommonAnalysisPlugin::pathHierarchy);
        tokenizers.put("thai", (index, env, name, s) -> tokenizer(name, ThaiTokenizer::new));
        return tokenizers;
    }

    private static TokenizerFactory pathHierarchy(IndexSettings index, Environment env, String name, Settings s) {
        char delimiter = oneChar(s, "delimiter", '/');
        char replacement = oneChar(s, "replacement", delimiter);
        int bufferSize = s.getAsInt("buffer_size", 1024);
        int skip = s.getAsInt("skip", 0);
        boolean reverse = s.getAsBoolean("reverse", false);
        return tokenizer(
            name,
            () -> reverse
                ? new ReversePathHierarchyTokenizer(bufferSize, delimiter, replacement, skip)
                : new PathHierarchyTokenizer(bufferSize, delimiter, replacement, skip)
        );
    }

    private static char oneChar(Settings s, String key, char fallback) {
        String value = s.get(key);
        if (value == null) {
            return fallback;
        }
        if (value.length() != 1) {
            throw new IllegalArgumentException(key + " must be a one char value");
        }
        return value.charAt(0);
    }

    @Override
    public List<PreConfiguredTokenizer> getPreConfiguredTokenizers() {
        return List.of(
            PreConfiguredTokenizer.singleton("whitespace", WhitespaceTokenizer::new),
            PreConfiguredTokenizer.singleton("letter", LetterTokenizer::new),
            PreConfiguredTokenizer.singleton("keyword", KeywordTokenizer::new),
            PreConfiguredTokenizer.singleton("classic", ClassicTokenizer::new),
            PreConfiguredTokenizer.singleton("uax_url_email", UAX29URLEmailTokenizer::new),
            PreConfiguredTokenizer.singleton("ngram", NGramTokenizer::new),
            PreConfiguredTokenizer.singleton(
                "edge_ngram",
                () -> new EdgeNGramTokenizer(NGramTokenizer.DEFAULT_MIN_NGRAM_SIZE, NGramTokenizer.DEFAULT_MAX_NGRAM_SIZE)
            ),
            PreConfiguredTokenizer.singleton("pattern", () -> new PatternTokenizer(Regex.compile("\\W+", null), -1)),
            PreConfiguredTokenizer.singleton("path_hierarchy", PathHierarchyTokenizer::new),
            PreConfiguredTokenizer.singleton("thai", ThaiTokenizer::new)
        );
    }

    @Override
    public Map<String, AnalysisProvider<CharFilterFactory>> getCharFilters() {
        Map<String, AnalysisProvider<CharFilterFactory>> filters = new TreeMap<>();
        filters.put("html_strip", (index, env, name, s) -> {
            Set<String> escapedTags = Set.copyOf(s.getAsList("escaped_tags"));
            return charFilter(name, false, reader -> new HTMLStripCharFilter(reader, escapedTags));
        });
        filters.put("mapping", requiresAnalysisSettings((index, env, name, s) -> {
            List<String> rules = Analysis.getWordList(env, s, "mappings");
            if (rules == null) {
                throw new IllegalArgumentException("mapping requires either `mappings` or `mappings_path` to be configured");
            }
            var map = Components.mappings(rules);
            return charFilter(name, true, reader -> new MappingCharFilter(map, reader));
        }));
        filters.put("pattern_replace", requiresAnalysisSettings((index, env, name, s) -> {
            String pattern = s.get("pattern");
            if (pattern == null) {
                throw new IllegalArgumentException("pattern is missing for [" + name + "] char filter of type 'pattern_replace'");
            }
            Pattern compiled = Regex.compile(pattern, s.get("flags"));
            String replacement = s.get("replacement", "");
            return charFilter(name, true, reader -> new PatternReplaceCharFilter(compiled, replacement, reader));
        }));
        return filters;
    }

    @Override
    public List<PreConfiguredCharFilter> getPreConfiguredCharFilters() {
        return List.of(PreConfiguredCharFilter.singleton("html_strip", false, HTMLStripCharFilter::new));
    }
}
